/* Starts GraphiQL against this node's own /graphql. Every asset comes from this node:
   no CDN, no fonts or scripts from anywhere else. The token goes in the headers tab
   and is not persisted: GraphiQL keeps its tabs and its history (which holds each run's
   headers and variables, shouldPersistHeaders notwithstanding) in the page's memory, never in
   localStorage, where the token and any ID number typed would outlive the tab. */
(function () {
  "use strict";
  var EXAMPLE = [
    "# tierfed: put your token in the Headers tab below as",
    "#   {\"Authorization\": \"Bearer eyJ...\"}",
    "# then run this query (Ctrl-Enter).",
    "{",
    "  nation { code name children { code name } }",
    "}",
    ""
  ].join("\n");
  var kept = {};
  var memory = {
    getItem: function (k) { return Object.prototype.hasOwnProperty.call(kept, k) ? kept[k] : null; },
    setItem: function (k, v) { kept[k] = String(v); },
    removeItem: function (k) { delete kept[k]; },
    clear: function () { kept = {}; },
    get length() { return Object.keys(kept).length; }
  };
  var fetcher = GraphiQL.createFetcher({ url: new URL("/graphql", window.location.href).toString() });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: EXAMPLE,
    defaultHeaders: JSON.stringify({ Authorization: "Bearer " }, null, 2),
    defaultEditorToolsVisibility: "headers",
    shouldPersistHeaders: false,
    storage: memory,
    isHeadersEditorEnabled: true
  }));
})();
