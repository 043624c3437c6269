/* tierfed dashboard: live figures.
 *
 * After app.js has loaded a region ("tierfed:dashboard-loaded"), the same operation is
 * watched as subscriptions over GraphQL over Server-Sent Events (POST /graphql with
 * Accept: text/event-stream, the bearer token from sessionStorage): one subscription per
 * root field of the operation (a subscription has exactly one), each carrying only the
 * variables and fragments it uses. Each new answer is merged into the page's data and
 * rendered in place by app.js's renderer; #live-status shows the time of the last update
 * (data-updated-at for tests). A dropped stream reconnects with the id of the last answer
 * it saw (Last-Event-ID) and so receives only what it missed. "tierfed:dashboard-loading"
 * (another region, period or scheme) stops every stream.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "tierfed.token";
  var RETRY_MS = [1000, 2000, 5000, 10000, 30000];
  var current = null; /* { streams: [...], data, render } */

  /* ------------------------------------------------------------------ status line */

  function statusNode() {
    var node = document.getElementById("live-status");
    if (!node) {
      node = document.createElement("p");
      node.id = "live-status";
      node.setAttribute("role", "status");
      node.className = "live-status";
      node.style.cssText = "margin:0 0 0.5rem;color:#5b6b7b;font-size:0.9em;min-height:1.2em";
      var anchor = document.getElementById("status");
      anchor.parentNode.insertBefore(node, anchor.nextSibling);
    }
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function clock(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function showStatus(state, text) {
    var node = statusNode();
    node.dataset.state = state;
    node.textContent = text;
  }

  function showUpdated(at) {
    var node = statusNode();
    delete node.dataset.stale;
    node.dataset.updatedAt = at.toISOString();
    node.dataset.updates = String(Number(node.dataset.updates || "0") + 1);
    showStatus("live", "实时更新 · 最近更新于 " + clock(at));
  }

  /* ------------------------------------------------------------------ one subscription per root field */

  /* The text between the braces that open at index i (i at "{"), and the index after it. */
  function block(text, i) {
    var depth = 0, j = i, inString = false;
    for (; j < text.length; j++) {
      var c = text[j];
      if (inString) { if (c === "\\") j++; else if (c === "\"") inString = false; continue; }
      if (c === "\"") inString = true;
      else if (c === "{") depth++;
      else if (c === "}") { depth--; if (depth === 0) return { inner: text.slice(i + 1, j), end: j + 1 }; }
    }
    throw new Error("unbalanced braces in the dashboard's operation");
  }

  /* Root fields of an operation's selection set, split at depth 0. */
  function rootFields(selection) {
    var out = [], start = 0, depth = 0, paren = 0;
    for (var i = 0; i < selection.length; i++) {
      var c = selection[i];
      if (c === "(") paren++;
      else if (c === ")") paren--;
      else if (c === "{") depth++;
      else if (c === "}") {
        depth--;
        if (depth === 0 && paren === 0) { out.push(selection.slice(start, i + 1).trim()); start = i + 1; }
      }
    }
    var rest = selection.slice(start).trim();
    if (rest) out.push(rest);
    return out;
  }

  function parseOperation(query) {
    var head = /^\s*query\s+(\w+)\s*(\(([^)]*)\))?\s*/.exec(query);
    if (!head) throw new Error("the dashboard's operation is not a named query");
    var body = block(query, query.indexOf("{", head[0].length - 1));
    var varDefs = {};
    (head[3] || "").split(/,(?![^\[]*\])/).forEach(function (d) {
      var m = /\$(\w+)\s*:/.exec(d);
      if (m) varDefs[m[1]] = d.trim();
    });
    var fragments = {}, rest = query.slice(body.end), re = /fragment\s+(\w+)\s+on\s+\w+\s*/g, m2;
    while ((m2 = re.exec(rest))) {
      var b = block(rest, rest.indexOf("{", m2.index + m2[0].length - 1));
      fragments[m2[1]] = rest.slice(m2.index, b.end);
      re.lastIndex = b.end;
    }
    return { name: head[1], varDefs: varDefs, fields: rootFields(body.inner), fragments: fragments };
  }

  /* A subscription of one root field, with only the fragments and variables it uses. */
  function subscriptionOf(op, field, index) {
    var used = {}, todo = [field], text = field, m;
    while (todo.length) {
      var re = /\.\.\.\s*(\w+)/g, t = todo.pop();
      while ((m = re.exec(t))) {
        if (op.fragments[m[1]] && !used[m[1]]) { used[m[1]] = true; todo.push(op.fragments[m[1]]); text += op.fragments[m[1]]; }
      }
    }
    var defs = Object.keys(op.varDefs).filter(function (v) { return new RegExp("\\$" + v + "\\b").test(text); });
    var key = /^(\w+)/.exec(field)[1]; /* the response key: the alias, or the field's name */
    return {
      key: key,
      vars: defs,
      query: "subscription " + op.name + "Live" + index + (defs.length ? "(" + defs.map(function (v) { return op.varDefs[v]; }).join(", ") + ")" : "") +
        " {\n  " + field + "\n}\n" + Object.keys(used).map(function (f) { return op.fragments[f]; }).join("\n")
    };
  }

  /* ------------------------------------------------------------------ Server-Sent Events over fetch */

  function Stream(sub, variables, onAnswer, onEnd) {
    this.sub = sub;
    this.variables = {};
    var self = this;
    sub.vars.forEach(function (v) { self.variables[v] = variables[v]; });
    this.onAnswer = onAnswer;
    this.onEnd = onEnd;
    this.lastId = null;
    this.stopped = false;
    this.failures = 0;
    this.controller = null;
    this.open();
  }

  Stream.prototype.stop = function () {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  };

  Stream.prototype.open = function () {
    var self = this;
    var token = sessionStorage.getItem(TOKEN_KEY) || "";
    var headers = { "Content-Type": "application/json", "Accept": "text/event-stream", "Authorization": "Bearer " + token };
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    this.controller = new AbortController();
    fetch("/graphql", {
      method: "POST", headers: headers, credentials: "omit", cache: "no-store", signal: this.controller.signal,
      body: JSON.stringify({ query: this.sub.query, variables: this.variables })
    }).then(function (resp) {
      var type = resp.headers.get("content-type") || "";
      if (type.indexOf("text/event-stream") !== 0) {
        return resp.json().then(function (body) { self.finish((body && body.errors) || [{ message: "HTTP " + resp.status }]); });
      }
      self.failures = 0;
      showStatus("live", statusNode().dataset.updatedAt ? statusNode().textContent : "实时更新 · 已连接");
      return self.read(resp.body.getReader());
    }).catch(function () {
      self.retry();
    });
  };

  Stream.prototype.read = function (reader) {
    var self = this, decoder = new TextDecoder(), buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) { self.retry(); return; }
        buffer += decoder.decode(chunk.value, { stream: true });
        var at;
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          var raw = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          if (self.event(raw) === false) { reader.cancel(); return; }
        }
        return pump();
      });
    }
    return pump();
  };

  /* One event: false when the stream is over. */
  Stream.prototype.event = function (raw) {
    var kind = "", id = null, data = "";
    raw.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) kind = line.slice(7);
      else if (line.indexOf("id: ") === 0) id = line.slice(4);
      else if (line.indexOf("data: ") === 0) data += line.slice(6);
    });
    if (kind === "complete") { this.finish(null); return false; }
    if (kind !== "next" || !data) return true;
    var payload = JSON.parse(data);
    if (id) this.lastId = id;
    if (payload.data === undefined && payload.errors) { this.finish(payload.errors); return false; }
    this.onAnswer(this.sub.key, payload);
    return true;
  };

  Stream.prototype.finish = function (errors) {
    this.stopped = true;
    this.onEnd(errors);
  };

  Stream.prototype.retry = function () {
    if (this.stopped) return;
    var self = this, wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    showStatus("reconnecting", "实时更新中断，" + Math.round(wait / 1000) + " 秒后重连…");
    setTimeout(function () { if (!self.stopped) self.open(); }, wait);
  };

  /* ------------------------------------------------------------------ wiring */

  function stopAll() {
    if (current) current.streams.forEach(function (s) { s.stop(); });
    current = null;
  }

  function watch(detail) {
    stopAll();
    var op;
    try { op = parseOperation(detail.query); } catch (e) { showStatus("error", "无法实时更新：" + e.message); return; }
    /* Each root field's errors as its own stream last gave them: a page is rendered with all of
       them (one stream's answer does not drop the other's errors, a pool's among them). */
    var mine = { streams: [], data: detail.data, render: detail.render, errors: {} };
    (detail.errors || []).forEach(function (e) {
      var k = Array.isArray(e.path) && e.path.length ? String(e.path[0]) : "";
      (mine.errors[k] = mine.errors[k] || []).push(e);
    });
    function allErrors() {
      return Object.keys(mine.errors).reduce(function (out, k) { return out.concat(mine.errors[k]); }, []);
    }
    current = mine;
    showStatus("connecting", "实时更新 · 连接中…");
    op.fields.forEach(function (field, i) {
      var sub = subscriptionOf(op, field, i);
      mine.streams.push(new Stream(sub, detail.variables, function (key, payload) {
        if (current !== mine) return;
        var fresh = payload.data ? payload.data[key] : null;
        var errs = (payload.errors || []).map(function (e) {
          /* the stream's field is the page's field of the same name */
          return Array.isArray(e.path) && e.path.length ? Object.assign({}, e, { path: [key].concat(e.path.slice(1)) }) : e;
        });
        if (fresh === null || fresh === undefined) {
          /* No answer this time (the database down, a deadline): the page keeps the figures it
             shows, and says they are not current. */
          var why = errs.length && errs[0].message ? errs[0].message : "未返回数据";
          /* data-stale stays until a live answer is shown again, whatever the text says meanwhile */
          statusNode().dataset.stale = why;
          showStatus("error", "实时更新出错：" + why + "（页面显示的是此前的数据）");
          return;
        }
        /* The page's first errors without a path (a child that did not answer) are the streams'
           to say from now on: each stream's answer carries its own. */
        var stale = (mine.errors[""] || []).length > 0;
        delete mine.errors[""];
        /* The first answer is usually what the page already shows: nothing to redraw. */
        if (!stale && JSON.stringify(fresh) === JSON.stringify(mine.data[key]) &&
            JSON.stringify(errs) === JSON.stringify(mine.errors[key] || [])) return;
        var data = {};
        Object.keys(mine.data).forEach(function (k) { data[k] = mine.data[k]; });
        data[key] = fresh;
        mine.data = data;
        mine.errors[key] = errs;
        mine.render(data, allErrors());
        showUpdated(new Date());
        /* the panels beside (funds.js, budget.js) read their figures again */
        document.dispatchEvent(new CustomEvent("tierfed:dashboard-updated"));
      }, function (errors) {
        if (current !== mine) return;
        var expired = (errors || []).some(function (e) { return e.extensions && e.extensions.code === "UNAUTHENTICATED"; });
        if (expired) showStatus("ended", "令牌已过期，实时更新已停止：请更换令牌");
        else if (errors && errors.length) showStatus("ended", "实时更新已停止：" + (errors[0].message || ""));
      }));
    });
  }

  document.addEventListener("tierfed:dashboard-loaded", function (ev) { watch(ev.detail); });
  document.addEventListener("tierfed:dashboard-loading", stopAll);
  window.addEventListener("pagehide", stopAll);
})();
