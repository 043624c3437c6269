/*
 * tierfed dashboard: the fund budget execution panel (issue 16).
 *
 * A panel of its own: it adds its section to #main, follows the region in the URL
 * fragment (as app.js does), and asks this node's /graphql for budgetExecution with
 * the token app.js keeps in sessionStorage. For a scheme and a month: each category's
 * budget for the year, the actual flows from January to the month of the pools budgeted,
 * and the share executed against the share of the year elapsed; apart, the actual of the
 * pools with no budget yet.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "tierfed.token";
  var SCHEME_NAMES = {
    PENSION: "养老保险", MEDICAL: "医疗保险", WORK_INJURY: "工伤保险", UNEMPLOYMENT: "失业保险", MATERNITY: "生育保险"
  };
  var CATEGORY_NAMES = {
    CONTRIBUTIONS: "社会保险费收入", FISCAL_SUBSIDY: "财政补贴收入", INTEREST: "利息收入",
    INVESTMENT_RETURN: "委托投资收益", TRANSFER_IN: "转移收入", SUBSIDY_FROM_ABOVE: "上级补助收入",
    REMITTANCE_FROM_BELOW: "下级上解收入", OTHER_INCOME: "其他收入", BENEFITS: "社会保险待遇支出",
    TRANSFER_OUT: "转移支出", SUBSIDY_TO_BELOW: "补助下级支出", REMITTANCE_TO_ABOVE: "上解上级支出",
    OTHER_EXPENDITURE: "其他支出"
  };
  var QUERY =
    "query BudgetExecution($region: ID!, $scheme: Scheme!, $month: Month!) {" +
    " budgetExecution(region: $region, scheme: $scheme, month: $month) {" +
    "  region { code name } scheme month complete missing { code name } period { from to } elapsedShare" +
    "  states { pools approved waiting notDrafted }" +
    "  income { category budget actual actualNotBudgeted share }" +
    "  expenditure { category budget actual actualNotBudgeted share }" +
    "  totalIncome { budget actual actualNotBudgeted share }" +
    "  totalExpenditure { budget actual actualNotBudgeted share } } }";

  var seq = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 5) === "data-" || k === "class" || k === "for" || k === "role" || k.slice(0, 5) === "aria-")
        node.setAttribute(k, attrs[k]);
      else node[k] = attrs[k];
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function scope() {
    var t = token();
    if (!t) return null;
    try {
      var c = JSON.parse(atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return typeof c.scope === "string" && /^\d{6}$/.test(c.scope) ? c.scope : null;
    } catch (e) { return null; }
  }

  function region() {
    var r = new URLSearchParams(location.hash.replace(/^#/, "")).get("region");
    return (r && r.trim()) || scope() || "000000";
  }

  /* "1234567.50" -> "1,234,567.50": the decimal string as sent, never through a float. */
  function money(s) {
    var neg = s.charAt(0) === "-";
    var parts = (neg ? s.slice(1) : s).split(".");
    return (neg ? "-" : "") + parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (parts.length > 1 ? "." + parts[1] : "");
  }

  function percent(share) {
    if (share === null || share === undefined) return "—";
    var p = (Number(share) * 100).toFixed(1);
    return p + "%";
  }

  function bar(share, elapsed) {
    var w = share === null ? 0 : Math.max(0, Math.min(100, Number(share) * 100));
    var over = share !== null && Number(share) > Number(elapsed);
    return el("div", { "class": "budget-bar", "aria-hidden": "true" }, [
      el("span", { "class": "budget-bar-fill" + (over ? " over" : ""), style: "width:" + w.toFixed(1) + "%" }),
      el("span", { "class": "budget-bar-mark", style: "left:" + (Number(elapsed) * 100).toFixed(1) + "%" })
    ]);
  }

  function row(label, key, x, elapsed, cls) {
    return el("tr", { "data-category": key, "class": cls || "" }, [
      el("th", { scope: "row", text: label }),
      el("td", { "data-field": "budget", text: money(x.budget) }),
      el("td", { "data-field": "actual", text: money(x.actual) }),
      el("td", { "data-field": "share", text: percent(x.share) }),
      el("td", { "data-field": "actualNotBudgeted", text: money(x.actualNotBudgeted) }),
      el("td", { "class": "budget-bar-cell" }, [bar(x.share, elapsed)])
    ]);
  }

  /* The panel's own few rules, kept beside it rather than in the shared style.css. */
  var STYLE =
    "#budget-form{margin:.5em 0}#budget-table td[data-field]{text-align:right;font-variant-numeric:tabular-nums}" +
    "#budget-table tr.subtotal th,#budget-table tr.subtotal td{font-weight:600;border-top:1px solid #ccc}" +
    ".budget-bar{position:relative;width:140px;height:10px;background:#eee;border-radius:2px}" +
    ".budget-bar-fill{position:absolute;left:0;top:0;bottom:0;background:#4a9a5b;border-radius:2px}" +
    ".budget-bar-fill.over{background:#e69d00}" +
    ".budget-bar-mark{position:absolute;top:-3px;bottom:-3px;width:2px;background:#333}";

  function build() {
    var main = document.getElementById("main");
    if (!main || document.getElementById("budget-panel")) return;
    document.head.appendChild(el("style", { text: STYLE }));
    var schemes = el("select", { id: "budget-scheme", "aria-label": "险种" }, Object.keys(SCHEME_NAMES).map(function (s) {
      return el("option", { value: s, text: SCHEME_NAMES[s] });
    }));
    var to = document.getElementById("period-to");
    var initial = to && /^\d{4}-(0[1-9]|1[0-2])$/.test(to.value) ? to.value : "2025-06";
    var month = el("input", { id: "budget-month", type: "text", value: initial, maxLength: 7, size: 8,
                              pattern: "[0-9]{4}-(0[1-9]|1[0-2])", placeholder: "YYYY-MM", "aria-label": "截至月份" });
    /* noValidate: the panel says what to fix itself, in the page's language, not in a native bubble */
    var form = el("form", { id: "budget-form", autocomplete: "off", noValidate: true }, [
      el("label", {}, ["险种 ", schemes]), " ", el("label", {}, ["截至 ", month]), " ",
      el("button", { type: "submit", text: "查看执行" })
    ]);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
    var table = el("table", { id: "budget-table", "class": "figures" }, [
      el("thead", {}, [el("tr", {}, ["项目", "年度预算（元）", "本年累计执行（元）", "执行率", "未编制预算基金累计（元）", "执行进度"].map(function (h) {
        return el("th", { scope: "col", text: h });
      }))]),
      el("tbody"), el("tfoot")
    ]);
    var section = el("section", { id: "budget-panel", "class": "panel", "data-state": "idle" }, [
      el("h3", {}, ["基金预算执行 ", el("small", { id: "budget-caption" })]),
      form,
      el("p", { id: "budget-states", "class": "note" }),
      el("div", { id: "budget-incomplete", "class": "banner warning", role: "alert", hidden: true }),
      el("ul", { id: "budget-errors", "class": "banner error", role: "alert", hidden: true }),
      el("div", { "class": "table-wrap" }, [table])
    ]);
    main.appendChild(section);
  }

  function load() {
    var section = document.getElementById("budget-panel");
    if (!section || !token()) return;
    var code = region();
    var scheme = document.getElementById("budget-scheme").value;
    var month = document.getElementById("budget-month").value.trim();
    var errors = document.getElementById("budget-errors");
    var mine = ++seq;
    section.dataset.state = "loading";
    if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) {
      show([{ message: "月份格式应为 YYYY-MM", extensions: { code: "BAD_USER_INPUT" } }]);
      return;
    }
    fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "Authorization": "Bearer " + token() },
      body: JSON.stringify({ query: QUERY, variables: { region: code, scheme: scheme, month: month } }),
      cache: "no-store", credentials: "same-origin"
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (mine !== seq) return;
      var ex = body && body.data && body.data.budgetExecution;
      if (!ex) { show((body && body.errors) || [{ message: "服务器未返回预算执行数据" }]); return; }
      render(ex, body.errors || []);
    }, function (err) {
      if (mine === seq) show([{ message: "无法连接服务器：" + err, extensions: { code: "NETWORK_ERROR" } }]);
    });

    function show(list) {
      errors.textContent = "";
      list.forEach(function (e) {
        errors.appendChild(el("li", { "data-code": (e.extensions && e.extensions.code) || "ERROR", text: e.message }));
      });
      errors.hidden = false;
      section.querySelector("tbody").textContent = "";
      section.querySelector("tfoot").textContent = "";
      section.dataset.state = "error";
    }
  }

  function render(ex, errs) {
    var section = document.getElementById("budget-panel");
    var errors = document.getElementById("budget-errors");
    errors.textContent = "";
    errors.hidden = true;
    document.getElementById("budget-caption").textContent =
      "（" + ex.region.name + "（" + ex.region.code + "），" + SCHEME_NAMES[ex.scheme] + "，" + ex.period.from +
      " 至 " + ex.period.to + "，时间进度 " + percent(ex.elapsedShare) + "）";
    var s = ex.states;
    document.getElementById("budget-states").textContent =
      "统筹基金 " + s.pools + " 个：已批准 " + s.approved + "，审批中 " + s.waiting + "，未编制 " + s.notDrafted;
    var warn = document.getElementById("budget-incomplete");
    if (ex.complete) { warn.hidden = true; warn.textContent = ""; }
    else {
      warn.hidden = false;
      warn.textContent = "部分数据暂缺：" + ex.missing.map(function (m) { return m.name + "（" + m.code + "）"; }).join("、") +
        " 的节点未响应，以下为其余部分的合计。";
    }
    var body = section.querySelector("tbody");
    body.textContent = "";
    body.appendChild(row("基金收入合计", "TOTAL_INCOME", ex.totalIncome, ex.elapsedShare, "subtotal"));
    ex.income.forEach(function (x) { body.appendChild(row(CATEGORY_NAMES[x.category], x.category, x, ex.elapsedShare)); });
    body.appendChild(row("基金支出合计", "TOTAL_EXPENDITURE", ex.totalExpenditure, ex.elapsedShare, "subtotal"));
    ex.expenditure.forEach(function (x) { body.appendChild(row(CATEGORY_NAMES[x.category], x.category, x, ex.elapsedShare)); });
    section.dataset.state = ex.complete && !errs.length ? "ready" : "partial";
  }

  function start() {
    build();
    load();
  }

  window.addEventListener("hashchange", function () { setTimeout(load, 0); });
  /* a token pasted into the form (not given in the address) loads the page anew */
  document.addEventListener("tierfed:dashboard-loaded", function () { setTimeout(load, 0); });
  /* a live answer moved the page's figures: the execution moves with them */
  document.addEventListener("tierfed:dashboard-updated", function () { setTimeout(load, 0); });
  /* the token dropped: nothing of its figures stays */
  document.addEventListener("tierfed:token-dropped", function () {
    var section = document.getElementById("budget-panel");
    if (!section) return;
    seq += 1;
    section.querySelector("tbody").textContent = "";
    section.querySelector("tfoot").textContent = "";
    ["budget-caption", "budget-states", "budget-incomplete", "budget-errors"].forEach(function (id) {
      document.getElementById(id).textContent = "";
    });
    document.getElementById("budget-incomplete").hidden = true;
    document.getElementById("budget-errors").hidden = true;
    section.dataset.state = "idle";
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
