// PostGraphile v5 over the benchmark's database: the Amber preset, @graphile/pg-aggregates
// for sums and grouped aggregates, and the connection filter for ranges and lists, which
// the aggregates need to express a period and a set of regions. No auth: PostGraphile here
// does less work per request than tierfed (no token, no scope check, no masking).
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PgAggregatesPreset } from "@graphile/pg-aggregates";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset, PgAggregatesPreset, PostGraphileConnectionFilterPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: 10 },
    }),
  ],
  grafserv: {
    port: Number(process.env.PORT || 5678),
    host: "127.0.0.1",
    graphiql: false,
    watch: false,
  },
  grafast: { explain: false },
};

export default preset;
