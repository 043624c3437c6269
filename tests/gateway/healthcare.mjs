// A second department's subgraph (healthcare security), built with @apollo/subgraph.
// It extends tierfed's Region with the medical insurance catalogue in force there, and
// names agencies and pools by key only: everything else about them comes from tierfed's
// _entities. The catalogue is computed from the region code; `catalogueFor` in
// tests/test_apollo_gateway.py mirrors it.
// Usage: node healthcare.mjs PORT FIXTURE_FILE
//   fixture: {"designatedAgencies": [code], "medicalPools": [id], "directSettlementPilots": [code]}
import { readFileSync } from "node:fs";
import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginInlineTraceDisabled } from "@apollo/server/plugin/disabled";
import { startStandaloneServer } from "@apollo/server/standalone";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { parse } from "graphql";

const [port, fixtureFile] = process.argv.slice(2);
const fixture = JSON.parse(readFileSync(fixtureFile, "utf8"));

const typeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

  type Region @key(fields: "code") {
    code: ID!
    "The provincial medical insurance drug catalogue in force in the region."
    medicalInsuranceCatalogue: String
  }

  type Agency @key(fields: "code", resolvable: false) {
    code: ID!
  }

  type Pool @key(fields: "id", resolvable: false) {
    id: ID!
  }

  type Query {
    "Agencies designated for cross-province direct settlement of medical bills."
    designatedAgencies: [Agency!]!
    "Medical insurance pools under healthcare-security supervision."
    medicalPools: [Pool!]!
    "Regions piloting direct settlement of outpatient bills across provinces."
    directSettlementPilots: [Region!]!
  }
`);

function catalogueFor(code) {
  if (code === "000000") return "NRDL-2025";
  return `NRDL-2025/${code.slice(0, 2)}0000`;
}

const resolvers = {
  Region: {
    __resolveReference(ref) {
      return { code: ref.code };
    },
    medicalInsuranceCatalogue(region) {
      return catalogueFor(region.code);
    },
  },
  Query: {
    designatedAgencies: () => fixture.designatedAgencies.map((code) => ({ code })),
    medicalPools: () => fixture.medicalPools.map((id) => ({ id })),
    directSettlementPilots: () => fixture.directSettlementPilots.map((code) => ({ code })),
  },
};

const server = new ApolloServer({
  schema: buildSubgraphSchema([{ typeDefs, resolvers }]),
  plugins: [ApolloServerPluginInlineTraceDisabled()],
});
const { url } = await startStandaloneServer(server, { listen: { host: "127.0.0.1", port: Number(port) } });
console.log(`ready ${url}`);
