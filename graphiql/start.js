/* Starts GraphiQL against this node's own /graphql. Every asset comes from this node:
   no CDN, no fonts or scripts from anywhere else. The token goes in the headers tab
   and is not persisted (shouldPersistHeaders: false). */
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
  var fetcher = GraphiQL.createFetcher({ url: new URL("/graphql", window.location.href).toString() });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: EXAMPLE,
    defaultHeaders: JSON.stringify({ Authorization: "Bearer " }, null, 2),
    defaultEditorToolsVisibility: "headers",
    shouldPersistHeaders: false,
    isHeadersEditorEnabled: true
  }));
})();
