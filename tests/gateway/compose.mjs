// Composes subgraph SDLs with @apollo/composition.
// stdin: JSON [{"name", "url", "sdl"}]; stdout: JSON {"errors", "hints", "supergraphSdl"}.
import { readFileSync } from "node:fs";
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

const services = JSON.parse(readFileSync(0, "utf8")).map((s) => ({
  name: s.name,
  url: s.url,
  typeDefs: parse(s.sdl),
}));
const result = composeServices(services);
process.stdout.write(JSON.stringify({
  errors: (result.errors ?? []).map((e) => ({ message: e.message, code: e.extensions?.code ?? null })),
  hints: (result.hints ?? []).map((h) => h.toString()),
  supergraphSdl: result.supergraphSdl ?? null,
}));
