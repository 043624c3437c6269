"""Descriptions of the types, fields, arguments and enum values that the code defining them
leaves undescribed, applied to the built schema once.

Most descriptions live beside their field in ``schema/``; these are the rest, kept in one
table so that describing the whole API touched no resolver signature. A description in
the code wins; ``tests/test_schema_contract.py`` fails on an entry here that the code now
describes itself, on one that names nothing, and on anything left undescribed.
Keys: ``Type``, ``Type.field``, ``Type.field(argument)``, ``Enum.VALUE``.
"""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)

REGION_CODE = "6-digit division code (GB/T 2260) of a region"

DESCRIPTIONS: dict[str, str] = {
    # ------------------------------------------------------------------ root
    "Query": "What a node answers: the directory (open to any valid token), and rollups, pools, persons and "
             "employers inside the token's scope, wherever in the federation they are held.",
    "Query.nation": "The root of the division tree (code \"000000\").",
    "Subscription.region(code)": REGION_CODE + ", e.g. \"440300\".",
    "Subscription.rollup(region)": REGION_CODE + " inside the token's scope.",
    "Subscription.rollup(period)": "The months to add up, both included.",
    "Subscription.rollup(schemes)": "The schemes to total; all schemes when null.",
    "Subscription.pool(id)": "The pool's id, as Pool.id gives it.",
    "Subscription.employer(creditCode)": "The 18-character unified social credit code (its check character is "
                                         "verified).",
    "Subscription.centralAdjustment(year)": "The calendar year, e.g. 2025.",
    "Subscription.centralAdjustment(ratio)": "The remittance ratio, e.g. \"0.045\" for 4.5%.",
    "Query.region(code)": REGION_CODE + ", e.g. \"440300\".",
    "Query.agency": "An agency of the directory by its code; null for a well-formed code that names none.",
    "Query.agency(code)": "Agency code: \"RS\" (human resources and social security) or \"YB\" (healthcare security) "
                          "and the 6-digit code of its region, e.g. \"RS440300\".",
    "Query.rollup": "Totals over a region's subtree and a period, merged from every node that holds part of it. "
                    "FORBIDDEN outside the token's scope.",
    "Query.rollup(region)": REGION_CODE + " inside the token's scope.",
    "Query.rollup(period)": "The months to add up, both included.",
    "Query.rollup(schemes)": "The schemes to total; all schemes when null.",
    "Query.pool": "A pool by its id; null when no pool has that id. FORBIDDEN outside the token's scope.",
    "Query.pool(id)": "The pool's id, as Pool.id gives it.",
    "Query.person": "A person by resident ID number, with records merged from every node that holds some; "
                    "null when none does. FORBIDDEN outside the token's scope.",
    "Query.person(idNumber)": "The 18-character resident ID number (its check character is verified).",
    "Query.duplicateInsurance(region)": REGION_CODE + " inside the token's scope: the subtree searched.",
    "Query.duplicateInsurance(period)": "The months searched, both included.",
    "Query.duplicateInsurance(first)": "At most this many entries, 1 to 1000 (default 100).",
    "DuplicateInsurance.scheme": "The scheme with a record in each region.",
    "DuplicateInsurance.month": "The month with a record in each region.",
    "Query.imports(kind)": "Only imports of this kind (regions, agencies, pools, employers, persons, contributions, "
                           "benefits); all kinds when null.",
    "Query.imports(first)": "At most this many, newest first.",
    "ImportRun.fileName": "The file's name as given on the command line or in the upload.",
    "ImportRun.finishedAt": "When the import ended, ISO 8601.",
    "ImportRun.seconds": "How long it took.",
    "ImportRun.bytes": "The file's size in bytes, as submitted.",
    "ImportRun.rows": "Data rows read from the file.",
    "ImportRun.inserted": "Rows that changed stored data (new records, or updated directory entries).",
    "ImportRun.unchanged": "Rows already stored exactly as they are in the file.",
    "ImportRun.badRows": "Rows refused (with rejected): how many, all of them, not only those reported.",
    "ImportRun.message": "Why it was rejected or failed; null when it went through.",
    # ---- changes across nodes (issue 11)
    "Change.id": "The change's id, the same on every node that takes part in it.",
    "Change.state": "Where the change stands on this node.",
    "Change.idempotencyKey": "The key the change was started with.",
    "Change.decidedAt": "When the coordinator decided (ISO 8601); null while undecided.",
    "Change.participants": "The nodes taking part, with each one's state.",
    "ChangeParticipant": "One node's part in a change across nodes.",
    "ChangeParticipant.region": "The region the node answers for.",
    "ChangeParticipant.state": "Where that node's part stands: PENDING while it has not applied the decision.",
    "ChangeState.PENDING": "Not yet decided, or decided and not yet applied on every node.",
    "ChangeState.COMMITTED": "Decided and applied.",
    "ChangeState.ABORTED": "Refused or failed before the decision: nothing changed anywhere.",
    "Query.changes(state)": "Only changes in this state; all when null.",
    "Query.changes(first)": "At most this many, newest first.",
    "InsuranceTransfer.id": "The transfer's id (also the id of its change across nodes).",
    "InsuranceTransfer.state": "COMMITTED once decided; ABORTED when refused.",
    "InsuranceTransfer.person": "The person moved, as the transfer releases them.",
    "InsuranceTransfer.from": "The region the person was registered in before the transfer.",
    "InsuranceTransfer.to": "The county, or city without counties, the insurance moved to.",
    "InsuranceTransfer.effectiveFrom": "First month insured at the destination.",
    "TransferredScheme.scheme": "The scheme.",
    "TransferredScheme.fromPool": "The origin's pool the pooled fund left; null outside your scope.",
    "TransferredScheme.toPool": "The destination's pool the pooled fund entered; null outside your scope.",
    "Mutation.transferInsurance(input)": "Who moves where from when, with an idempotency key.",
    "TransferInsuranceInput": "A transfer to make (or, with dryRun, to show).",
    "TransferInsuranceInput.dryRun": "True: compute and show the transfer, change nothing anywhere.",
    "TransferInsuranceResult": "The outcome of transferInsurance.",
    "TransferInsuranceResult.transfer": "The transfer made (or, for a dry run, that would be made).",
    "TransferInsuranceResult.replayed": "True when the same key and input were seen before: the earlier result.",
    "TransferInsuranceResult.dryRun": "True when nothing was changed.",
    "Pool.transfersIn(asOf)": "The last month counted (default: the current month).",
    "Pool.transfersOut(asOf)": "The last month counted (default: the current month).",
    "Query._tierCall(kind)": "person, statement, employer, employer_totals, duplicates, elsewhere or presence.",
    "Query._tierCall(args)": "One JSON object per call, answered in the same order.",
    "Query.employer(creditCode)": "The 18-character unified social credit code (its check character is verified).",
    "Query.centralAdjustment": "The pension central adjustment of a year: each province's remittance and allocation. "
                               "Needs a national scope.",
    "Query.centralAdjustment(year)": "The calendar year, e.g. 2025.",
    "Query.centralAdjustment(ratio)": "The remittance ratio, e.g. \"0.045\" for 4.5%.",
    "Query.poolingOverview(asOf)": "The month to describe; the current month when null.",
    "Query.poolingChanges(region)": REGION_CODE + "; the token's scope when null.",
    "Query.poolingChanges(limit)": "At most this many changes, newest first.",
    "Query.piiReads(idNumber)": "Only the reads of this resident ID number; every read when null.",
    "Query.piiReads(limit)": "At most this many reads, newest first.",
    "Query._tierPools(asOf)": "The month the pools must be open in.",
    "Query._tierSummaries(keys)": "The regions and periods to summarise, each inside the answering node's subtree.",
    "Mutation": "Changes: each needs OPERATOR and a scope over the regions it changes.",
    "Mutation.raisePoolingLevel(input)": "What to pool, over which region, from which month.",
    # ------------------------------------------------------------------ directory
    "Tier": "The four tiers of the administrative hierarchy, from the nation down.",
    "Tier.CENTRAL": "The nation.",
    "Tier.PROVINCE": "A province, autonomous region, municipality or special administrative region.",
    "Tier.CITY": "A prefecture-level city or equivalent.",
    "Tier.COUNTY": "A county-level division (county, district, county-level city).",
    "Department.HUMAN_RESOURCES_SOCIAL_SECURITY": "Human resources and social security: pension, work injury, "
                                                  "unemployment.",
    "Department.HEALTHCARE_SECURITY": "Healthcare security: medical and maternity.",
    "AgencyKind": "What kind of office an agency is.",
    "AgencyKind.AGENCY": "A social insurance agency of its region.",
    "AgencyKind.BRANCH": "A branch of an agency.",
    "AgencyKind.SERVICE_OUTLET": "A service outlet where insured persons are served in person.",
    "Agency": "A social insurance agency: one per region and department in the shipped directory, "
              "each under the agency of its parent region.",
    "Agency.code": "\"RS\" or \"YB\" and the 6-digit code of its region, e.g. \"RS440300\".",
    "Agency.name": "Official name.",
    "Agency.tier": "The tier of the agency's region.",
    "Agency.department": "The department the agency belongs to.",
    "Agency.kind": "What kind of office it is.",
    "Agency.region": "The region the agency serves.",
    "Agency.parent": "The agency one tier up; null at the nation.",
    "Agency.children": "The agencies directly under this one, in code order.",
    "Region.name": "Official name, e.g. \"深圳市\".",
    "Region.tier": "The region's tier.",
    "Region.parent": "The region one level up; null for the nation.",
    "Region.agencies": "The region's own agencies, in code order.",
    "Region.agencies(department)": "Only this department's agencies; all when null.",
    "Region.pool(scheme)": "The scheme whose pool is asked for.",
    "Region.pool(asOf)": "The month the pool must cover; the current month when null.",
    # ------------------------------------------------------------------ pools
    "Pool.id": "Stable identifier of the pool.",
    "Pool.scheme": "The scheme the fund is for.",
    "Pool.region": "The region whose whole subtree the fund is pooled over.",
    "Pool.openedFrom": "First month the pool covers.",
    "Pool.balance(asOf)": "The month whose end the balance is for; the current month when null.",
    "Pool.predecessors": "The pools this one replaced when it opened (raisePoolingLevel), in id order.",
    "SchemePooling.scheme": "The scheme described.",
    "SchemePooling.levels": "One entry per pooling level with pools open, from the nation down.",
    "PoolingLevelCount": "How many pools of a scheme are open at one level, and over which regions.",
    "PoolingLevelCount.level": "The pooling level.",
    "PoolingLevelCount.count": "Number of open pools at this level.",
    "PoolingLevelCount.regions": "The regions those pools cover, in code order.",
    "PoolingChange.id": "Identifier of the change.",
    "PoolingChange.idempotencyKey": "The key the caller sent with it.",
    "PoolingChange.caller": "The subject of the token that made it.",
    "PoolingChange.at": "When it was applied (ISO 8601, UTC).",
    "PoolingChange.input": "The mutation's input as sent.",
    "PoolingChange.result": "The result returned.",
    "RaisePoolingLevelInput": "A pooling level to raise: one scheme, pooled over one region's subtree from a month on.",
    "RaisePoolingLevelInput.scheme": "The scheme to pool.",
    "RaisePoolingLevelInput.effectiveFrom": "First month of the new pool; the replaced pools close the month before.",
    "RaisePoolingLevelResult": "What raisePoolingLevel did, or with dryRun would do.",
    # ------------------------------------------------------------------ rollups
    "Rollup.region": "The region whose subtree is added up.",
    "Rollup.period": "The months added up.",
    "Rollup.missing": "The regions whose records could not be reached (their node did not answer); empty when complete.",
    "Period": "An inclusive range of months.",
    "Period.from": "First month.",
    "Period.to": "Last month.",
    "PeriodInput.from": "First month, \"YYYY-MM\".",
    "PeriodInput.to": "Last month, \"YYYY-MM\", not before from.",
    "SchemeTotals.scheme": "The scheme totalled.",
    "SchemeTotals.contributionEmployer": "Contributions paid by employers in the period.",
    "SchemeTotals.contributionIndividual": "Contributions paid by insured persons in the period.",
    "SchemeTotals.benefitsPaid": "Benefits paid in the period.",
    "MonthTotals": "The totals of one month of a rollup's period.",
    "MonthTotals.month": "The month.",
    "MonthTotals.totals": "One entry per requested scheme, in Scheme order, zeros included.",
    "Scheme.PENSION": "Basic pension insurance for employees.",
    "Scheme.MEDICAL": "Basic medical insurance for employees.",
    "Scheme.WORK_INJURY": "Work-injury insurance.",
    "Scheme.UNEMPLOYMENT": "Unemployment insurance.",
    "Scheme.MATERNITY": "Maternity insurance.",
    # ------------------------------------------------------------------ persons and employers
    "Person": "An insured person, readable inside the token's scope; records from every node merged.",
    "Person.name": "Name as registered.",
    "Person.statement(year)": "The calendar year, e.g. 2025.",
    "PersonalStatement.year": "The year.",
    "PersonalStatement.schemes": "One entry per scheme, in Scheme order (zeros where the person has no record).",
    "PersonSchemeYear": "One person's records of one scheme over one year.",
    "PersonSchemeYear.scheme": "The scheme.",
    "PersonSchemeYear.contributionEmployer": "Contributions paid by employers for the person in the year.",
    "PersonSchemeYear.contributionIndividual": "Contributions the person paid in the year.",
    "PersonSchemeYear.individualAccount": "What went to the person's individual account in the year.",
    "PersonSchemeYear.benefitsPaid": "Benefits paid to the person in the year.",
    "Employer.creditCode": "The 18-character unified social credit code.",
    "Employer.name": "Registered name.",
    "Employer.region": "The region whose agency registered the employer.",
    "Employer.contributions(period)": "The months to add up, both included.",
    "EmployerSchemeTotals.scheme": "The scheme.",
    "EmployerSchemeTotals.contributionEmployer": "Contributions the employer paid in the period.",
    "EmployerSchemeTotals.contributionIndividual": "Contributions its employees paid through it in the period.",
    "EmployerSchemeTotals.averageBase": "Mean contribution base of its records in the period.",
    # ------------------------------------------------------------------ central adjustment and audit
    "CentralAdjustment": "The pension central adjustment of one year over the provinces.",
    "CentralAdjustment.year": "The year.",
    "CentralAdjustment.ratio": "The remittance ratio used.",
    "CentralAdjustment.complete": "False when some province's figures could not be reached; then missing names them.",
    "CentralAdjustment.missing": "The provinces left out because their node did not answer.",
    "ProvinceAdjustment.region": "The province.",
    "PiiRead.id": "Identifier of the audit entry.",
    "PiiRead.at": "When the ID number was read (ISO 8601, UTC).",
    "PiiRead.caller": "The subject of the token that read it.",
    "PiiRead.scope": "The scope of that token.",
    "PiiRead.idNumber": "The ID number read.",
    "PiiRead.operation": "The operation's name, or \"sha256:\" and the hash of an anonymous operation's text.",
    "TierSummaryKey.region": REGION_CODE + " inside the answering node's subtree.",
    "TierSummaryKey.from": "First month.",
    "TierSummaryKey.to": "Last month.",
    # ------------------------------------------------------------------ fund accounts (next.graphql's words first)
    "FundFlowCategory.CONTRIBUTIONS": "Pooled part of contributions (from the records).",
    "FundFlowCategory.TRANSFER_IN": "Insurance transfers in (from transferInsurance).",
    "FundFlowCategory.SUBSIDY_FROM_ABOVE": "From the tier above, e.g. a central adjustment allocation.",
    "FundFlowCategory.BENEFITS": "Benefits paid (from the records).",
    "FundFlowCategory.TRANSFER_OUT": "Insurance transfers out (from transferInsurance).",
    "FundFlowCategory.REMITTANCE_TO_ABOVE": "To the tier above, e.g. a central adjustment remittance.",
    "FundFlowCategory.FISCAL_SUBSIDY": "Fiscal subsidies paid into the fund (booked from fund_flows files).",
    "FundFlowCategory.INTEREST": "Interest earned by the fund (booked from fund_flows files).",
    "FundFlowCategory.INVESTMENT_RETURN": "Returns on the fund's entrusted investment (booked from fund_flows files).",
    "FundFlowCategory.REMITTANCE_FROM_BELOW": "Received from pools of the tiers below (booked from fund_flows files).",
    "FundFlowCategory.OTHER_INCOME": "Any other income (booked from fund_flows files).",
    "FundFlowCategory.SUBSIDY_TO_BELOW": "Paid to pools of the tiers below (booked from fund_flows files).",
    "FundFlowCategory.OTHER_EXPENDITURE": "Any other expenditure (booked from fund_flows files).",
    "FundFlow": "One category's amount in a fund account.",
    "FundFlow.category": "The category.",
    "FundFlow.amount": "Its amount over the account's period, in yuan (never negative: the side gives the sign).",
    "FundAccount.pool": "The pool accounted for.",
    "FundAccount.period": "The months accounted for.",
    "FundAccount.income": "Every income category, CONTRIBUTIONS to OTHER_INCOME, zeros included.",
    "FundAccount.expenditure": "Every expenditure category, BENEFITS to OTHER_EXPENDITURE, zeros included.",
    "FundAccount.totalIncome": "The sum of income.",
    "FundAccount.totalExpenditure": "The sum of expenditure.",
    "FundAccount.closingBalance": "openingBalance + surplus: the pool's balance(asOf: period.to).",
    "Pool.account(period)": "Months inside those the pool covers (openedFrom to closedAfter, or to this month).",
}

# Defined by the Apollo Federation and link specifications, not by this API.
FEDERATION = ("_Any", "_Entity", "_Service", "_FieldSet", "link__Purpose", "link__Import",
              "Query._entities", "Query._service", "_Service.sdl", "link__Purpose.SECURITY",
              "link__Purpose.EXECUTION", "Query._entities(representations)")


def members(schema: GraphQLSchema) -> dict[str, object]:
    """Every type, field, argument and enum value of the API by key, federation's own left out."""
    out: dict[str, object] = {}
    for name, t in schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        out[name] = t
        if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for fname, f in t.fields.items():
                out[f"{name}.{fname}"] = f
                for aname, a in getattr(f, "args", {}).items():
                    out[f"{name}.{fname}({aname})"] = a
        elif isinstance(t, GraphQLEnumType):
            for vname, v in t.values.items():
                out[f"{name}.{vname}"] = v
    for key in FEDERATION:
        out.pop(key, None)
    return out


def apply(schema: GraphQLSchema) -> None:
    """Describe what the code left undescribed; an entry never overrides the code's own."""
    found = members(schema)
    for key, text in DESCRIPTIONS.items():
        m = found.get(key)
        if m is not None and not m.description:  # type: ignore[attr-defined]
            m.description = text  # type: ignore[attr-defined]
