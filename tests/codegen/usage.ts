// Compiled (tsc --noEmit --strict) by tests/test_codegen.py against the generated types:
// what a frontend team writes with them.
import type { DashboardQuery, DashboardQueryVariables, PersonQuery, Scheme } from "./generated/graphql";

export function totalInsured(q: DashboardQuery, scheme: Scheme): number {
  return q.rollup.totals.filter((t) => t.scheme === scheme).reduce((n, t) => n + t.insured, 0);
}

export function poolBalance(q: DashboardQuery): string | null {
  return q.region?.pool_PENSION?.balance ?? null;
}

export const variables: DashboardQueryVariables = {
  region: "440000",
  period: { from: "2025-01", to: "2025-06" },
  schemes: ["PENSION", "MEDICAL"],
};

export function maskedId(q: PersonQuery): string | undefined {
  return q.person?.idNumber;
}
