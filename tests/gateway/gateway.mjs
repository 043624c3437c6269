// @apollo/gateway on @apollo/server over a supergraph composed by compose.mjs.
// The client's Authorization header is forwarded to every subgraph; each subgraph
// request is also appended as one JSON line to LOG_FILE so the test can see what
// the gateway asked tierfed for.
// Usage: node gateway.mjs PORT SUPERGRAPH_FILE LOG_FILE
import { appendFileSync, readFileSync } from "node:fs";
import { ApolloGateway, RemoteGraphQLDataSource } from "@apollo/gateway";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";

const [port, supergraphFile, logFile] = process.argv.slice(2);

class ForwardingDataSource extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    if (context.authorization) {
      request.http.headers.set("authorization", context.authorization);
    }
    appendFileSync(logFile, JSON.stringify({
      subgraph: this.name,
      authorization: request.http.headers.get("authorization") ?? null,
      query: request.query,
      variables: request.variables ?? {},
    }) + "\n");
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: readFileSync(supergraphFile, "utf8"),
  buildService: ({ name, url }) => Object.assign(new ForwardingDataSource({ url }), { name }),
});
const server = new ApolloServer({ gateway, includeStacktraceInErrorResponses: false });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(port) },
  context: async ({ req }) => ({ authorization: req.headers.authorization ?? null }),
});
console.log(`ready ${url}`);
