/*
 * tierfed dashboard: plain JavaScript, no build step, no framework.
 * Talks only to this node's /graphql with the bearer token kept in sessionStorage.
 *
 * Test protocol
 *   document.body.dataset.state: "loading" while any request is in flight, otherwise
 *   the outcome ("ready" | "error") of the most recently started load (region load or
 *   person lookup). With no token stored it is "error" and #token-form is shown.
 *   #main[data-state] and #person-result[data-state] carry the state of each part alone.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "tierfed.token";
  var GRAPHQL_URL = "/graphql";

  var SCHEMES = ["PENSION", "MEDICAL", "WORK_INJURY", "UNEMPLOYMENT", "MATERNITY"];
  var SCHEME_NAMES = {
    PENSION: "养老保险",
    MEDICAL: "医疗保险",
    WORK_INJURY: "工伤保险",
    UNEMPLOYMENT: "失业保险",
    MATERNITY: "生育保险"
  };
  var SCHEME_COLORS = {
    PENSION: "#c23531",
    MEDICAL: "#2f7ed8",
    WORK_INJURY: "#e69d00",
    UNEMPLOYMENT: "#4a9a5b",
    MATERNITY: "#9b59b6"
  };
  var TIER_NAMES = { CENTRAL: "全国", PROVINCE: "省级", CITY: "市级", COUNTY: "县级" };
  var ROLE_NAMES = { VIEWER: "查看", OPERATOR: "经办", PII_READER: "个人信息" };

  /* Every field of SchemeTotals except `scheme`, in display order. */
  var FIELDS = [
    { key: "insured", label: "参保人数", kind: "int", unit: "人" },
    { key: "contributorMonths", label: "缴费人月", kind: "int", unit: "人月" },
    { key: "contributionEmployer", label: "单位缴费", kind: "dec", unit: "元" },
    { key: "contributionIndividual", label: "个人缴费", kind: "dec", unit: "元" },
    { key: "contributionTotal", label: "缴费合计", kind: "dec", unit: "元" },
    { key: "individualAccount", label: "个人账户", kind: "dec", unit: "元" },
    { key: "pooled", label: "统筹基金", kind: "dec", unit: "元" },
    { key: "benefitsPaid", label: "待遇支出", kind: "dec", unit: "元" },
    { key: "beneficiaries", label: "待遇领取人数", kind: "int", unit: "人" }
  ];
  var PERSON_FIELDS = [
    { key: "months", label: "缴费月数", kind: "int" },
    { key: "contributionEmployer", label: "单位缴费（元）", kind: "dec" },
    { key: "contributionIndividual", label: "个人缴费（元）", kind: "dec" },
    { key: "individualAccount", label: "个人账户（元）", kind: "dec" },
    { key: "benefitsPaid", label: "待遇支出（元）", kind: "dec" }
  ];

  /* ------------------------------------------------------------------ queries */

  var TOTALS_FRAGMENT =
    "fragment Totals on SchemeTotals { scheme insured contributorMonths contributionEmployer " +
    "contributionIndividual contributionTotal individualAccount pooled benefitsPaid beneficiaries }";
  var POOL_FRAGMENT =
    "fragment PoolFields on Pool { id level region { code name } openedFrom closedAfter " +
    "openingBalance balance predecessors { id level region { code name } openedFrom closedAfter } }";

  function dashboardQuery(schemes) {
    var pools = schemes.map(function (s) {
      return "    pool_" + s + ": pool(scheme: " + s + ") { ...PoolFields }\n";
    }).join("");
    return (
      "query Dashboard($region: ID!, $period: PeriodInput!, $schemes: [Scheme!]) {\n" +
      "  rollup(region: $region, period: $period, schemes: $schemes) {\n" +
      "    region { code name tier }\n" +
      "    complete\n" +
      "    missing { code name }\n" +
      "    totals { ...Totals }\n" +
      "    byChild { region { code name tier } complete totals { ...Totals } }\n" +
      "    byMonth { month totals { ...Totals } }\n" +
      "  }\n" +
      "  region(code: $region) {\n" +
      "    code name tier\n" +
      "    ancestors { code name }\n" +
      "    children { code }\n" +
      pools +
      "  }\n" +
      "}\n" + TOTALS_FRAGMENT + "\n" + POOL_FRAGMENT + "\n"
    );
  }

  var DIRECTORY_QUERY =
    "query RegionDirectory($code: ID!) {\n" +
    "  region(code: $code) { code name tier ancestors { code name } children { code name tier } }\n" +
    "}\n";

  var POOL_HISTORY_QUERY =
    "query PoolHistory($id: ID!) {\n" +
    "  pool(id: $id) { id predecessors { id level region { code name } openedFrom closedAfter } }\n" +
    "}\n";

  var PERSON_QUERY =
    "query Person($idNumber: String!, $year: Int!) {\n" +
    "  person(idNumber: $idNumber) {\n" +
    "    idNumber name region { code name }\n" +
    "    statement(year: $year) { year complete missing { code name } schemes { scheme months contributionEmployer " +
    "contributionIndividual individualAccount benefitsPaid } }\n" +
    "  }\n" +
    "}\n";

  /* ------------------------------------------------------------------ numbers */

  function groupDigits(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /* "1234567.50" -> "1,234,567.50", by string manipulation only (never a float). */
  function fmtDec(s) {
    if (s === null || s === undefined) return "—";
    var m = /^(-?)(\d+)((?:\.\d+)?)$/.exec(String(s));
    if (!m) return String(s);
    return m[1] + groupDigits(m[2]) + m[3];
  }

  function fmtInt(n) {
    if (n === null || n === undefined) return "—";
    var m = /^(-?)(\d+)$/.exec(String(n));
    return m ? m[1] + groupDigits(m[2]) : String(n);
  }

  function fmtField(kind, v) {
    return kind === "int" ? fmtInt(v) : fmtDec(v);
  }

  function parseDec(s) {
    var m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(s));
    if (!m) return null;
    var frac = m[3] || "";
    return { v: BigInt(m[1] + m[2] + frac), scale: frac.length };
  }

  /* Exact sum of decimal strings (BigInt); null if one of them is not a decimal. */
  function sumDec(list) {
    var scale = 2;
    var parsed = [];
    for (var i = 0; i < list.length; i++) {
      var p = parseDec(list[i]);
      if (!p) return null;
      parsed.push(p);
      if (p.scale > scale) scale = p.scale;
    }
    var total = BigInt(0);
    parsed.forEach(function (p) {
      total += p.v * BigInt(10) ** BigInt(scale - p.scale);
    });
    var neg = total < BigInt(0);
    var digits = (neg ? -total : total).toString();
    while (digits.length <= scale) digits = "0" + digits;
    var cut = digits.length - scale;
    return (neg ? "-" : "") + digits.slice(0, cut) + (scale ? "." + digits.slice(cut) : "");
  }

  function sumTotals(list, fields) {
    var out = {};
    (fields || FIELDS).forEach(function (f) {
      if (f.kind === "int") {
        out[f.key] = list.reduce(function (a, t) { return a + (Number(t[f.key]) || 0); }, 0);
      } else {
        out[f.key] = sumDec(list.map(function (t) { return t[f.key]; }));
      }
    });
    return out;
  }

  /* Axis labels only (charts may use Number()). */
  function compactYuan(v) {
    var a = Math.abs(v);
    if (a >= 1e8) return +(v / 1e8).toFixed(2) + "亿";
    if (a >= 1e4) return +(v / 1e4).toFixed(1) + "万";
    return String(v);
  }

  /* ------------------------------------------------------------------ DOM helpers */

  function $(sel) { return document.querySelector(sel); }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = v;
        else if (k === "className") node.className = v;
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x) node.appendChild(typeof x === "string" ? document.createTextNode(x) : x); });
      else node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function regionLabel(r) {
    if (!r) return "—";
    return (r.name || "") + " (" + r.code + ")";
  }

  /* ------------------------------------------------------------------ token */

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function setToken(t) {
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage disabled */ }
  }

  function dropToken() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage disabled */ }
  }

  /* Reads the (unverified) claims, only to pick a start region and show who is signed in. */
  function tokenClaims(token) {
    try {
      var part = token.split(".")[1];
      var b64 = part.replace(/-/g, "+").replace(/_/g, "/");
      while (b64.length % 4) b64 += "=";
      var bin = atob(b64);
      var bytes = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      var claims = JSON.parse(new TextDecoder("utf-8").decode(bytes));
      return claims && typeof claims === "object" ? claims : null;
    } catch (e) {
      return null;
    }
  }

  function tokenScope() {
    var t = getToken();
    var c = t ? tokenClaims(t) : null;
    return c && typeof c.scope === "string" && /^\d{6}$/.test(c.scope) ? c.scope : null;
  }

  /* ------------------------------------------------------------------ GraphQL */

  function gql(query, variables) {
    var token = getToken() || "";
    return fetch(GRAPHQL_URL, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/graphql-response+json, application/json",
        "Authorization": "Bearer " + token
      },
      body: JSON.stringify({ query: query, variables: variables }),
      cache: "no-store",
      credentials: "same-origin"
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var body = null;
        try { body = JSON.parse(text); } catch (e) { body = null; }
        if (!body || typeof body !== "object" || (!("data" in body) && !("errors" in body))) {
          return {
            data: null,
            errors: [{
              message: "服务器返回 HTTP " + resp.status + (resp.statusText ? " " + resp.statusText : ""),
              extensions: { code: resp.status === 401 ? "UNAUTHENTICATED" : "HTTP_" + resp.status }
            }]
          };
        }
        return { data: body.data || null, errors: Array.isArray(body.errors) ? body.errors : [] };
      });
    }, function (err) {
      return {
        data: null,
        errors: [{ message: "无法连接服务器：" + (err && err.message ? err.message : String(err)), extensions: { code: "NETWORK_ERROR" } }]
      };
    });
  }

  function errorCode(e) {
    return (e && e.extensions && e.extensions.code) || "ERROR";
  }

  function errorItems(errors) {
    return errors.map(function (e) {
      var path = Array.isArray(e.path) && e.path.length ? e.path.join(".") : "";
      return el("li", { "data-code": errorCode(e) },
        el("code", { className: "err-code", text: errorCode(e) }), " ",
        el("span", { className: "err-message", text: e.message || "未知错误" }),
        path ? el("span", { className: "err-path", text: "（" + path + "）" }) : null);
    });
  }

  function hasCode(errors, code) {
    return errors.some(function (e) { return errorCode(e) === code; });
  }

  /* ------------------------------------------------------------------ state */

  var state = {
    region: null,
    mainSeq: 0,
    personSeq: 0,
    opSeq: 0,
    lastOp: 0,
    lastOutcome: "loading",
    pending: 0,
    children: [],
    charts: { children: null, months: null }
  };

  function beginOp() {
    state.opSeq += 1;
    state.pending += 1;
    document.body.dataset.state = "loading";
    return state.opSeq;
  }

  function endOp(op, outcome) {
    state.pending = Math.max(0, state.pending - 1);
    if (op >= state.lastOp) {
      state.lastOp = op;
      state.lastOutcome = outcome;
    }
    document.body.dataset.state = state.pending > 0 ? "loading" : state.lastOutcome;
  }

  function selectedSchemes() {
    var boxes = document.querySelectorAll("#scheme-select input[type=checkbox]");
    var picked = [];
    boxes.forEach(function (b) { if (b.checked) picked.push(b.value); });
    return SCHEMES.filter(function (s) { return picked.indexOf(s) >= 0; });
  }

  function readPeriod() {
    return { from: $("#period-from").value.trim(), to: $("#period-to").value.trim() };
  }

  function hashParams() {
    return new URLSearchParams(location.hash.replace(/^#/, ""));
  }

  /* Moves a token from the URL fragment into sessionStorage and scrubs it from the URL. */
  function takeTokenFromHash() {
    var p = hashParams();
    if (!p.has("token")) return;
    var t = (p.get("token") || "").trim();
    if (t) setToken(t);
    p.delete("token");
    var rest = p.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  function currentRegionFromHash() {
    var r = hashParams().get("region");
    return r ? r.trim() : null;
  }

  function navigate(code) {
    var target = "region=" + encodeURIComponent(code);
    if (location.hash.replace(/^#/, "") === target) loadRegion();
    else location.hash = target; /* hashchange -> loadRegion(); keeps browser history */
  }

  /* ------------------------------------------------------------------ token UI */

  function showTokenForm(message) {
    $("#token-panel").hidden = false;
    if (message) {
      var p = $("#token-panel p.token-message") || $("#token-panel").insertBefore(el("p", { className: "token-message banner error" }), $("#token-form"));
      p.textContent = message;
    }
  }

  function renderTokenInfo() {
    var token = getToken();
    var box = $("#token-info");
    if (!token) { box.hidden = true; return; }
    var c = tokenClaims(token) || {};
    var bits = [];
    if (c.sub) bits.push("用户 " + c.sub);
    if (c.scope) bits.push("范围 " + c.scope);
    if (Array.isArray(c.roles)) bits.push("角色 " + c.roles.map(function (r) { return ROLE_NAMES[r] ? ROLE_NAMES[r] + "(" + r + ")" : r; }).join("、"));
    if (typeof c.exp === "number") {
      var d = new Date(c.exp * 1000);
      bits.push((d.getTime() < Date.now() ? "已于 " : "有效至 ") + d.toLocaleString("zh-CN", { hour12: false }));
    }
    $("#token-summary").textContent = bits.length ? "令牌：" + bits.join(" · ") : "已提供令牌";
    box.hidden = false;
  }

  /* ------------------------------------------------------------------ main load */

  function setMainState(s) {
    $("#main").dataset.state = s;
    $("#main").classList.toggle("is-loading", s === "loading");
    $("#main").classList.toggle("has-error", s === "error");
  }

  function showErrors(errors, extra, partial) {
    var box = $("#errors");
    clear(box);
    if (!errors.length && !extra) { box.hidden = true; return; }
    box.appendChild(el("strong", { text: partial ? "部分数据请求出错（其余数据照常显示）" : "请求出错" }));
    box.appendChild(el("ul", null, errorItems(errors)));
    if (extra) box.appendChild(extra);
    box.hidden = false;
  }

  function loadRegion() {
    var token = getToken();
    if (!token) {
      /* Nothing of the previous token's stays: its live answers stop, its person lookup and the
         panels beside are cleared. */
      document.dispatchEvent(new CustomEvent("tierfed:dashboard-loading"));
      document.dispatchEvent(new CustomEvent("tierfed:token-dropped"));
      clear($("#person-result"));
      $("#person-result").dataset.state = "idle";
      $("#main").hidden = true;
      showTokenForm();
      document.body.dataset.state = state.pending > 0 ? "loading" : "error";
      state.lastOutcome = "error";
      return;
    }
    $("#main").hidden = false;
    renderTokenInfo();

    var code = currentRegionFromHash() || tokenScope() || "000000";
    state.region = code;
    $("#main").dataset.region = code; /* the region shown, which the panels beside follow */
    $("#region-input").value = code;
    var schemes = selectedSchemes();
    var period = readPeriod();

    var seq = ++state.mainSeq;
    var op = beginOp();
    document.dispatchEvent(new CustomEvent("tierfed:dashboard-loading")); /* live.js stops watching */
    setMainState("loading");
    $("#status").textContent = "加载中…";

    if (!/^\d{4}-\d{2}$/.test(period.from) || !/^\d{4}-\d{2}$/.test(period.to)) {
      failMain(seq, op, [{ message: "期间格式应为 YYYY-MM", extensions: { code: "BAD_USER_INPUT" } }], code);
      return;
    }

    var variables = { region: code, period: { from: period.from, to: period.to }, schemes: schemes };
    gql(dashboardQuery(schemes), variables).then(function (res) {
      if (seq !== state.mainSeq) { endOp(op, state.lastOutcome); return; }
      var data = res.data || {};
      if (!data.rollup) {
        failMain(seq, op, res.errors.length ? res.errors : [{ message: "服务器未返回汇总数据", extensions: { code: "ERROR" } }], code);
        return;
      }
      try {
        renderDashboard(data, res.errors, schemes, period);
      } catch (e) {
        failMain(seq, op, [{ message: "页面渲染出错：" + e.message, extensions: { code: "CLIENT_ERROR" } }], code);
        return;
      }
      $("#status").textContent = "";
      setMainState("ready");
      endOp(op, "ready");
      /* live.js watches the same operation and renders each new answer in place */
      document.dispatchEvent(new CustomEvent("tierfed:dashboard-loaded", { detail: {
        query: dashboardQuery(schemes), variables: variables, data: data, errors: res.errors || [],
        render: function (d, errs) { if (seq === state.mainSeq) renderDashboard(d, errs || [], schemes, period); }
      } }));
    });
  }

  function failMain(seq, op, errors, code) {
    var extra = null;
    var scope = tokenScope();
    if (hasCode(errors, "FORBIDDEN") && scope && scope !== code) {
      extra = el("p", null, "您的令牌范围为 " + scope + "，可",
        el("a", { href: "#region=" + scope, "data-code": scope, text: "转到该区划" }),
        "，或在上方输入其下级区划代码。");
    } else if (hasCode(errors, "FORBIDDEN")) {
      extra = el("p", { text: "请在上方输入令牌范围内的区划代码。" });
    }
    if (hasCode(errors, "UNAUTHENTICATED")) showTokenForm("令牌无效或已过期，请重新提供令牌。");
    showErrors(errors, extra);
    var title = clear($("#region-title"));
    title.appendChild(el("span", { className: "region-code", text: "(" + code + ")" }));
    $("#breadcrumbs").textContent = "";
    $("#children-panel").hidden = true;
    $("#status").textContent = "";
    $("#incomplete-banner").hidden = true;
    clearFigures();
    setMainState("error");
    endOp(op, "error");
    if (!hasCode(errors, "UNAUTHENTICATED") && /^\d{6}$/.test(code)) loadDirectory(seq, code);
  }

  /* After a refused rollup: the directory is readable with any token, so still show
     where we are and let the user navigate (no figures). Not counted as a load. */
  function loadDirectory(seq, code) {
    gql(DIRECTORY_QUERY, { code: code }).then(function (res) {
      if (seq !== state.mainSeq) return;
      var r = res.data && res.data.region;
      if (!r) {
        setTitle({ code: code, name: "未知区划" });
        return;
      }
      setTitle(r);
      renderBreadcrumbs(r.ancestors || [], r);
      var rows = (r.children || []).map(function (c) { return { region: c, complete: null, totals: null }; });
      state.children = rows;
      renderChildrenTable(rows, r);
      $("#children-panel").hidden = false;
    });
  }

  function clearFigures() {
    clear($("#totals-cards"));
    ["thead", "tbody", "tfoot"].forEach(function (t) { clear($("#scheme-table " + t)); });
    clear($("#children-table thead"));
    clear($("#children-table tbody"));
    clear($("#pool-list"));
    $("#totals-caption").textContent = "";
    $("#no-children").hidden = true;
    $("#children-table").hidden = false;
    $("#children-chart-panel").hidden = false;
    $("#chart-row").classList.remove("single");
    disposeChart("children");
    disposeChart("months");
  }

  /* ------------------------------------------------------------------ rendering */

  function setTitle(r) {
    var t = clear($("#region-title"));
    t.appendChild(el("span", { className: "region-name", text: r.name || "" }));
    t.appendChild(document.createTextNode(" "));
    t.appendChild(el("span", { className: "region-code", text: "(" + r.code + ")" }));
    if (r.tier) t.appendChild(document.createTextNode(" "));
    if (r.tier) t.appendChild(el("span", { className: "tier-badge", "data-tier": r.tier, text: TIER_NAMES[r.tier] || r.tier }));
    document.title = (r.name || r.code) + " (" + r.code + ") · tierfed 社会保险数据看板";
  }

  function renderBreadcrumbs(ancestors, current) {
    var nav = clear($("#breadcrumbs"));
    var ol = el("ol");
    ancestors.forEach(function (a) {
      ol.appendChild(el("li", null, el("a", { href: "#region=" + encodeURIComponent(a.code), "data-code": a.code, text: regionLabel(a) })));
    });
    ol.appendChild(el("li", { "aria-current": "page", "data-code": current.code, text: regionLabel(current) }));
    nav.appendChild(ol);
  }

  function renderDashboard(data, errors, schemes, period) {
    var rollup = data.rollup;
    var region = data.region || rollup.region;
    setTitle(region);
    renderBreadcrumbs((data.region && data.region.ancestors) || [], region);
    /* Unreachable child nodes are told plainly in the incomplete banner, pool errors in the
       pool table; the error box keeps the rest. */
    var folded = rollup.complete === false ? errors.filter(isUnavailable) : [];
    showErrors(errors.filter(function (e) { return folded.indexOf(e) < 0 && !isPoolError(e); }), null, true);
    renderIncomplete(rollup, folded);

    /* The region itself unreachable: its figures are unknown, not zero. */
    var unknown = isMissing(rollup, region.code);
    var totals = rollup.totals || [];
    $("#totals-caption").textContent =
      "（" + period.from + " 至 " + period.to + "，" + schemes.map(function (s) { return SCHEME_NAMES[s]; }).join("、") +
      "；人数按险种相加）";
    renderCards(unknown ? null : sumTotals(totals));
    renderSchemeTable(totals, unknown);

    /* A child's figures are unknown when it is missing, or when the region itself is (its
       children are read through the same node). */
    var children = (rollup.byChild || []).map(function (c) {
      return unknown || isMissing(rollup, c.region.code) ?
        { region: c.region, complete: false, totals: null, missing: true } : c;
    });
    state.children = children;
    renderChildrenTable(children, region);
    $("#children-panel").hidden = false;
    renderChildrenChart(children, schemes);
    renderMonthsChart(unknown ? [] : rollup.byMonth || []);
    renderPools(data.region, schemes, errors);
  }

  function isUnavailable(e) {
    return errorCode(e) === "TIER_UNAVAILABLE";
  }

  function isPoolError(e) {
    return Array.isArray(e.path) && e.path.some(function (p) { return /^pool_/.test(String(p)); });
  }

  function isMissing(rollup, code) {
    return rollup.complete === false && (rollup.missing || []).some(function (m) { return m.code === code; });
  }

  function noChildrenText(region) {
    if (region.tier === "COUNTY") return "本区划为县级区划，没有下级区划，无法继续下钻。";
    return "本区划没有下级区划，无法继续下钻。";
  }

  function renderIncomplete(rollup, unavailable) {
    var banner = clear($("#incomplete-banner"));
    if (rollup.complete !== false) { banner.hidden = true; return; }
    banner.appendChild(el("strong", { text: "数据不完整：" }));
    var missing = rollup.missing || [];
    if (missing.length) {
      banner.appendChild(document.createTextNode("以下区划暂时无法访问，合计与图表不含其数据："));
      banner.appendChild(el("ul", null, missing.map(function (m) {
        return el("li", { "data-code": m.code }, el("span", { className: "m-name", text: m.name || "" }), " ",
          el("span", { className: "m-code", text: "(" + m.code + ")" }));
      })));
    } else {
      banner.appendChild(document.createTextNode("部分下级节点暂时无法访问，合计不含其数据。"));
    }
    var nodes = [];
    (unavailable || []).forEach(function (e) {
      var x = e.extensions || {};
      var label = (x.node ? "节点 " + x.node : "下级节点") + (x.region ? "（" + x.region + "）" : "");
      if (nodes.indexOf(label) < 0) nodes.push(label);
    });
    if (nodes.length) {
      banner.appendChild(el("p", { className: "m-nodes", title: unavailable.map(function (e) { return e.message; }).join("\n") },
        "无法连接：" + nodes.join("、") + "。请稍后刷新，或联系该节点的运维人员。"));
    }
    banner.hidden = false;
  }

  function renderCards(sum) {
    var box = clear($("#totals-cards"));
    FIELDS.forEach(function (f) {
      box.appendChild(el("div", { className: "card", "data-field": f.key },
        el("div", { className: "card-label", text: f.label }),
        el("div", { className: "card-value" },
          el("span", { className: "figure", "data-testid": "total-" + f.key, text: sum ? fmtField(f.kind, sum[f.key]) : "—" }),
          el("span", { className: "unit", text: f.unit }))));
    });
  }

  function figureCells(values) {
    return FIELDS.map(function (f) {
      var v = values ? values[f.key] : null;
      return el("td", { className: "num", "data-field": f.key, text: values ? fmtField(f.kind, v) : "—" });
    });
  }

  function headerRow(first) {
    return el("tr", null, first.map(function (h) { return el("th", { scope: "col", text: h }); }),
      FIELDS.map(function (f) { return el("th", { scope: "col", className: "num", "data-field": f.key, text: f.label + (f.kind === "dec" ? "（元）" : "") }); }));
  }

  function renderSchemeTable(totals, unknown) {
    var table = $("#scheme-table");
    clear(table.tHead).appendChild(headerRow(["险种"]));
    var body = clear(table.tBodies[0]);
    totals.forEach(function (t) {
      body.appendChild(el("tr", { "data-scheme": t.scheme },
        el("th", { scope: "row", "data-field": "scheme" },
          el("span", { className: "swatch", "data-scheme": t.scheme }), SCHEME_NAMES[t.scheme] || t.scheme),
        figureCells(unknown ? null : t)));
    });
    clear(table.tFoot).appendChild(el("tr", { "data-scheme": "ALL" },
      el("th", { scope: "row", "data-field": "scheme", text: "合计" }), figureCells(unknown ? null : sumTotals(totals))));
  }

  /* With no children the chart row holds the month chart alone and the table gives way to a note. */
  function showNoChildren(region, none) {
    var note = $("#no-children");
    note.textContent = none ? noChildrenText(region) : "";
    note.hidden = !none;
    $("#children-table").hidden = none;
    $("#children-chart-panel").hidden = none;
    $("#children-hint").hidden = none;
    $("#chart-row").classList.toggle("single", none);
  }

  function renderChildrenTable(children, region) {
    var table = $("#children-table");
    var head = clear(table.tHead);
    var body = clear(table.tBodies[0]);
    showNoChildren(region, !children.length);
    if (!children.length) return;
    var hr = headerRow(["区划", "层级"]);
    hr.appendChild(el("th", { scope: "col", text: "数据" }));
    head.appendChild(hr);
    children.forEach(function (c) {
      var r = c.region;
      var values = c.totals ? sumTotals(c.totals) : null;
      var status = c.missing ? "无法访问" : c.complete === false ? "不完整" : c.complete === true ? "完整" : "—";
      body.appendChild(el("tr", { "data-code": r.code, className: "drill" + (c.complete === false ? " incomplete" : ""), title: "下钻到 " + regionLabel(r) },
        el("td", { "data-field": "region" },
          el("a", { href: "#region=" + encodeURIComponent(r.code), "data-code": r.code },
            el("span", { className: "region-name", text: r.name }), " ",
            el("span", { className: "region-code", text: "(" + r.code + ")" }))),
        el("td", { "data-field": "tier", text: TIER_NAMES[r.tier] || r.tier || "—" }),
        figureCells(values),
        el("td", { "data-field": "complete", className: c.complete === false ? "warn" : "", text: status })));
    });
  }

  /* ------------------------------------------------------------------ charts */

  function chartsAvailable() {
    return typeof window.echarts !== "undefined" && window.echarts && typeof window.echarts.init === "function";
  }

  function getChart(name, id) {
    var node = document.getElementById(id);
    node.hidden = false;
    if (!chartsAvailable()) {
      clear(node).appendChild(el("p", { className: "note", text: "图表库未加载。" }));
      return null;
    }
    if (!state.charts[name]) state.charts[name] = window.echarts.init(node, null, { renderer: "canvas" });
    else state.charts[name].resize(); /* the chart row may have changed between one and two columns */
    return state.charts[name];
  }

  function disposeChart(name) {
    if (state.charts[name]) {
      state.charts[name].dispose();
      state.charts[name] = null;
    }
  }

  function tooltipRow(color, label, value) {
    return '<div class="tt-row"><span class="tt-dot" style="background:' + color + '"></span>' +
      escapeHtml(label) + '<b>' + escapeHtml(value) + "</b></div>";
  }

  /* Axis labels: a short name (广东省 -> 广东, 新疆维吾尔自治区 -> 新疆); the tooltip has the full one. */
  function shortName(name) {
    if (!name) return "";
    var s = name.replace(/(特别行政区|维吾尔自治区|壮族自治区|回族自治区|自治区|省|市)$/, "");
    if (s.length < 2) s = name;
    return s.length > 5 ? s.slice(0, 4) + "…" : s;
  }

  /* Horizontal labels when they fit their column, else slanted, else vertical. */
  function labelRotation(width, names) {
    if (!names.length) return 0;
    var longest = names.reduce(function (a, n) { return Math.max(a, n.length); }, 0);
    var labelWidth = longest * 12 + 6;
    var column = Math.max(width - 70, 100) / names.length;
    if (column >= labelWidth) return 0;
    if (column >= 0.72 * labelWidth + 14) return 40;
    return 90;
  }

  function renderChildrenChart(children, schemes) {
    var node = document.getElementById("chart-children");
    if (!children.length) {
      disposeChart("children");
      clear(node);
      node.hidden = true;
      return;
    }
    var chart = getChart("children", "chart-children");
    if (!chart) return;
    var names = children.map(function (c) { return shortName(c.region.name); });
    var byScheme = children.map(function (c) {
      var m = {};
      (c.totals || []).forEach(function (t) { m[t.scheme] = t; });
      return m;
    });
    var series = schemes.map(function (s) {
      return {
        name: SCHEME_NAMES[s],
        type: "bar",
        stack: "contribution",
        barMaxWidth: 48,
        itemStyle: { color: SCHEME_COLORS[s] },
        emphasis: { focus: "series" },
        data: children.map(function (c, i) {
          if (c.missing) return null; /* unknown, not zero */
          return byScheme[i][s] ? Number(byScheme[i][s].contributionTotal) : 0;
        })
      };
    });
    var rotate = labelRotation(node.clientWidth, names);
    chart.setOption({
      animationDuration: 300,
      legend: { top: 0, type: "scroll" },
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        axisPointer: { type: "shadow" },
        confine: true,
        formatter: function (params) {
          if (!params.length) return "";
          var i = params[0].dataIndex;
          var c = children[i];
          var html = "<div class=\"tt-title\">" + escapeHtml(regionLabel(c.region)) + "</div>";
          if (c.missing) return html + "<div class=\"tt-hint\">暂时无法访问，数据未知</div>";
          var parts = [];
          schemes.forEach(function (s) {
            var t = byScheme[i][s];
            if (!t) return;
            parts.push(t.contributionTotal);
            html += tooltipRow(SCHEME_COLORS[s], SCHEME_NAMES[s], fmtDec(t.contributionTotal) + " 元");
          });
          html += tooltipRow("transparent", "缴费合计", fmtDec(sumDec(parts)) + " 元");
          return html + "<div class=\"tt-hint\">点击下钻</div>";
        }
      },
      xAxis: {
        type: "category",
        data: names,
        triggerEvent: true,
        axisLabel: { interval: 0, rotate: rotate, hideOverlap: false, fontSize: 12 }
      },
      yAxis: { type: "value", axisLabel: { formatter: compactYuan } },
      series: series
    }, true);

    if (!chart.__tierfedBound) {
      chart.__tierfedBound = true;
      /* A click anywhere in a category column of the plot area drills down. */
      chart.getZr().on("click", function (e) {
        var pt = [e.offsetX, e.offsetY];
        if (!chart.containPixel("grid", pt)) return;
        var xy = chart.convertFromPixel({ gridIndex: 0 }, pt);
        var c = Array.isArray(xy) ? state.children[Math.round(xy[0])] : null;
        if (c) navigate(c.region.code);
      });
      /* Clicking an axis label drills down too. */
      chart.on("click", function (p) {
        if (p.componentType !== "xAxis") return;
        var c = typeof p.dataIndex === "number" ? state.children[p.dataIndex] : null;
        if (!c) c = state.children.filter(function (x) { return x.region.name === p.value; })[0];
        if (c) navigate(c.region.code);
      });
    }
  }

  function renderMonthsChart(byMonth) {
    var chart = getChart("months", "chart-months");
    if (!chart) return;
    var months = byMonth.map(function (m) { return m.month; });
    var contrib = byMonth.map(function (m) { return sumDec((m.totals || []).map(function (t) { return t.contributionTotal; })); });
    var benefits = byMonth.map(function (m) { return sumDec((m.totals || []).map(function (t) { return t.benefitsPaid; })); });
    chart.setOption({
      animationDuration: 300,
      legend: { top: 0 },
      grid: { left: 8, right: 30, top: 36, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        confine: true,
        formatter: function (params) {
          if (!params.length) return "";
          var i = params[0].dataIndex;
          return "<div class=\"tt-title\">" + escapeHtml(months[i]) + "</div>" +
            tooltipRow("#2f7ed8", "缴费合计", fmtDec(contrib[i]) + " 元") +
            tooltipRow("#c23531", "待遇支出", fmtDec(benefits[i]) + " 元");
        }
      },
      xAxis: { type: "category", data: months, boundaryGap: false },
      yAxis: { type: "value", axisLabel: { formatter: compactYuan } },
      series: [
        { name: "缴费合计", type: "line", smooth: false, symbolSize: 6, itemStyle: { color: "#2f7ed8" }, data: contrib.map(Number) },
        { name: "待遇支出", type: "line", smooth: false, symbolSize: 6, itemStyle: { color: "#c23531" }, data: benefits.map(Number) }
      ]
    }, true);
  }

  /* ------------------------------------------------------------------ pools */

  function poolPeriod(p) {
    return (p.openedFrom || "?") + " 至 " + (p.closedAfter ? p.closedAfter : "今（开放中）");
  }

  function renderPredecessors(list) {
    if (!list.length) return el("span", { className: "note", text: "无（自设立起即为本级统筹）" });
    return el("ol", { className: "history" }, list.map(function (p) {
      var li = el("li", { "data-pool-id": p.id },
        el("span", { className: "tier-badge", "data-tier": p.level, text: TIER_NAMES[p.level] || p.level }), " ",
        el("span", { text: regionLabel(p.region) }), " · ",
        el("span", { text: poolPeriod(p) }), " · ",
        el("code", { className: "pool-id", text: p.id }), " ");
      var btn = el("button", { type: "button", className: "link-button", text: "更早沿革" });
      btn.addEventListener("click", function () { loadPoolHistory(p.id, li, btn); });
      li.appendChild(btn);
      return li;
    }));
  }

  function loadPoolHistory(id, li, btn) {
    btn.disabled = true;
    btn.textContent = "加载中…";
    gql(POOL_HISTORY_QUERY, { id: id }).then(function (res) {
      btn.remove();
      var pool = res.data && res.data.pool;
      if (!pool) {
        li.appendChild(el("ul", { className: "banner error small" }, errorItems(res.errors.length ? res.errors : [{ message: "未找到该基金", extensions: { code: "NOT_FOUND" } }])));
        return;
      }
      li.appendChild(renderPredecessors(pool.predecessors || []));
    });
  }

  /* One row per scheme: the pool covering the region now, and the pools it succeeded. */
  function renderPools(region, schemes, errors) {
    var list = clear($("#pool-list"));
    var anyPool = schemes.some(function (s) { return region && region["pool_" + s]; });
    /* No pool covers the region for any scheme (e.g. the nation): no empty fund columns. */
    var cols = anyPool ? [
      { text: "险种" }, { text: "统筹层次" }, { text: "统筹区域" }, { text: "起止" },
      { text: "期初余额（元）", num: true }, { text: "当前余额（元）", num: true }, { text: "基金编号" },
      { text: "沿革（前身基金）" }
    ] : [{ text: "险种" }, { text: "统筹层次" }, { text: "说明" }];
    var none = region && region.children && region.children.length ?
      "当前没有覆盖本区划全境的统筹基金，由下级区划分别统筹。" : "当前没有覆盖本区划的统筹基金。";
    var table = el("table", { id: "pool-table", className: "figures pools" },
      el("thead", null, el("tr", null, cols.map(function (c) {
        return el("th", { scope: "col", className: c.num ? "num" : null, text: c.text });
      }))));
    var body = el("tbody");
    schemes.forEach(function (s) {
      var alias = "pool_" + s;
      var pool = region ? region[alias] : null;
      var errs = errors.filter(function (e) {
        return Array.isArray(e.path) && e.path.indexOf(alias) >= 0;
      });
      var tr = el("tr", { className: "pool", "data-scheme": s },
        el("th", { scope: "row" }, el("span", { className: "swatch", "data-scheme": s }), SCHEME_NAMES[s]));
      if (errs.length) {
        tr.appendChild(el("td", { colspan: String(cols.length - 1), className: "wrap" },
          el("ul", { className: "banner error small" }, errorItems(errs))));
      } else if (!pool) {
        tr.appendChild(el("td", { className: "pool-level", "data-field": "level", text: "无" }));
        tr.appendChild(el("td", { colspan: String(cols.length - 2), className: "note wrap", text: none }));
      } else {
        tr.appendChild(el("td", { className: "pool-level", "data-field": "level", "data-level": pool.level },
          el("span", { className: "tier-badge", "data-tier": pool.level, text: TIER_NAMES[pool.level] || pool.level })));
        tr.appendChild(el("td", { "data-field": "region", text: regionLabel(pool.region) }));
        tr.appendChild(el("td", { "data-field": "period", text: poolPeriod(pool) }));
        tr.appendChild(el("td", { "data-field": "openingBalance", className: "num", text: fmtDec(pool.openingBalance) }));
        tr.appendChild(el("td", { "data-field": "balance", className: "num", text: fmtDec(pool.balance) }));
        tr.appendChild(el("td", { "data-field": "id" }, el("code", { className: "pool-id", text: pool.id })));
        tr.appendChild(el("td", { "data-field": "history", className: "wrap" }, renderPredecessors(pool.predecessors || [])));
      }
      body.appendChild(tr);
    });
    table.appendChild(body);
    list.appendChild(el("div", { className: "table-wrap" }, table));
  }

  /* ------------------------------------------------------------------ person */

  function setPersonState(s) {
    $("#person-result").dataset.state = s;
  }

  function lookupPerson(ev) {
    ev.preventDefault();
    var out = clear($("#person-result"));
    var id = $("#person-id").value.trim().toUpperCase();
    var year = $("#person-year").value.trim();
    var seq = ++state.personSeq;
    var op = beginOp();
    setPersonState("loading");
    if (!/^\d{17}[\dX]$/.test(id) || !/^\d{4}$/.test(year)) {
      out.appendChild(el("div", { className: "banner error" }, el("ul", null, errorItems([{
        message: "请输入 18 位公民身份号码和 4 位年度", extensions: { code: "BAD_USER_INPUT" }
      }]))));
      setPersonState("error");
      endOp(op, "error");
      return;
    }
    out.appendChild(el("p", { className: "note", text: "查询中…" }));
    gql(PERSON_QUERY, { idNumber: id, year: Number(year) }).then(function (res) {
      if (seq !== state.personSeq) { endOp(op, state.lastOutcome); return; }
      clear(out);
      var data = res.data || {};
      if (res.errors.length && !data.person) {
        out.appendChild(el("div", { className: "banner error" }, el("strong", { text: "查询出错" }), el("ul", null, errorItems(res.errors))));
        if (hasCode(res.errors, "UNAUTHENTICATED")) showTokenForm("令牌无效或已过期，请重新提供令牌。");
        setPersonState("error");
        endOp(op, "error");
        return;
      }
      if (!data.person) {
        out.appendChild(el("p", { className: "note", "data-testid": "person-not-found", text: "未找到该人员。" }));
        setPersonState("ready");
        endOp(op, "ready");
        return;
      }
      renderPerson(out, data.person, res.errors);
      setPersonState("ready");
      endOp(op, "ready");
    });
  }

  function renderPerson(out, person, errors) {
    out.appendChild(el("dl", { className: "person-facts" },
      el("dt", { text: "姓名" }), el("dd", { "data-field": "name", text: person.name }),
      el("dt", { text: "公民身份号码" }), el("dd", { "data-field": "idNumber" }, el("code", { text: person.idNumber })),
      el("dt", { text: "参保地" }), el("dd", { "data-field": "region", text: regionLabel(person.region) })));
    if (errors.length) out.appendChild(el("div", { className: "banner error" }, el("ul", null, errorItems(errors))));
    var st = person.statement;
    if (!st) return;
    if (st.complete === false) {
      /* months held on a node that did not answer: the figures below lack them */
      var gone = (st.missing || []).map(function (m) { return (m.name || "") + "（" + m.code + "）"; }).join("、");
      out.appendChild(el("div", { className: "banner incomplete", "data-testid": "person-incomplete",
        text: "记录不完整：" + (gone || "部分下级节点") + " 暂时无法访问，下表不含其记录。" }));
    }
    var schemes = st.schemes || [];
    var table = el("table", { id: "person-statement", className: "figures" },
      el("caption", { text: st.year + " 年度个人权益记录" }),
      el("thead", null, el("tr", null, el("th", { scope: "col", text: "险种" }),
        PERSON_FIELDS.map(function (f) { return el("th", { scope: "col", className: "num", text: f.label }); }))));
    var body = el("tbody");
    if (!schemes.length) {
      body.appendChild(el("tr", { className: "empty" }, el("td", { colspan: String(PERSON_FIELDS.length + 1), text: "该年度没有缴费或待遇记录。" })));
    }
    schemes.forEach(function (s) {
      body.appendChild(el("tr", { "data-scheme": s.scheme },
        el("th", { scope: "row", text: SCHEME_NAMES[s.scheme] || s.scheme }),
        PERSON_FIELDS.map(function (f) { return el("td", { className: "num", "data-field": f.key, text: fmtField(f.kind, s[f.key]) }); })));
    });
    table.appendChild(body);
    if (schemes.length > 1) {
      var sum = sumTotals(schemes, PERSON_FIELDS);
      table.appendChild(el("tfoot", null, el("tr", { "data-scheme": "ALL" }, el("th", { scope: "row", text: "合计" }),
        PERSON_FIELDS.map(function (f) { return el("td", { className: "num", "data-field": f.key, text: fmtField(f.kind, sum[f.key]) }); }))));
    }
    out.appendChild(table);
  }

  /* ------------------------------------------------------------------ wiring */

  function init() {
    takeTokenFromHash();

    $("#token-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var t = $("#token-input").value.trim();
      $("#token-input").value = "";
      if (!t) return;
      setToken(t);
      $("#token-panel").hidden = true;
      var msg = $("#token-panel p.token-message");
      if (msg) msg.remove();
      loadRegion();
    });

    $("#token-clear").addEventListener("click", function () {
      dropToken();
      $("#token-info").hidden = true;
      clearFigures();
      loadRegion();
    });

    $("#controls").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var code = $("#region-input").value.trim();
      if (code && code !== state.region) navigate(code);
      else loadRegion();
    });

    document.querySelectorAll("#scheme-select input[type=checkbox]").forEach(function (box) {
      box.addEventListener("change", function () {
        if (!selectedSchemes().length) {
          box.checked = true; /* at least one scheme */
          $("#status").textContent = "请至少选择一个险种。";
          return;
        }
        loadRegion();
      });
    });
    ["#period-from", "#period-to"].forEach(function (sel) {
      $(sel).addEventListener("change", function () { loadRegion(); });
    });

    $("#children-table").addEventListener("click", function (ev) {
      if (ev.target.closest("a")) return; /* the link itself changes the hash */
      var tr = ev.target.closest("tr[data-code]");
      if (tr) navigate(tr.dataset.code);
    });

    $("#person-form").addEventListener("submit", lookupPerson);

    window.addEventListener("hashchange", function () {
      takeTokenFromHash();
      loadRegion();
    });

    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        Object.keys(state.charts).forEach(function (k) { if (state.charts[k]) state.charts[k].resize(); });
      }, 100);
    });

    loadRegion();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
