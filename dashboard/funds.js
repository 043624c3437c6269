/*
 * tierfed dashboard: the fund panel and the ranking panel (issue 15), beside app.js.
 *
 * Self-contained: it adds its two panels after the pool panel and follows app.js
 * through the page itself (the region in #region-input and the period once
 * #main[data-state] is "ready"), so app.js needs no change. Same token, same /graphql.
 *
 * Test protocol: #fund-panel[data-state] and #ranking-panel[data-state] are
 * "loading", "ready" or "error"; figures carry data-field / data-category attributes.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "tierfed.token";
  var SCHEME_NAMES = { PENSION: "养老保险", MEDICAL: "医疗保险", WORK_INJURY: "工伤保险",
                       UNEMPLOYMENT: "失业保险", MATERNITY: "生育保险" };
  var TIER_BELOW = { CENTRAL: "PROVINCE", PROVINCE: "CITY", CITY: "COUNTY" };
  var TIER_LABEL = { PROVINCE: "省", CITY: "市", COUNTY: "县" };
  /* RankBy: its label, and whether a larger value is better (the best ten are then the largest). */
  var INDICATORS = [
    { by: "DEPENDENCY_RATIO", label: "抚养比（缴费人数/待遇领取人数）", higherIsBetter: true },
    { by: "INCOME_EXPENDITURE_RATIO", label: "收支比（统筹收入/待遇支出）", higherIsBetter: true },
    { by: "INSURED", label: "参保人数", higherIsBetter: true },
    { by: "POOLED", label: "统筹基金收入", higherIsBetter: true },
    { by: "CONTRIBUTION_TOTAL", label: "缴费合计", higherIsBetter: true },
    { by: "BENEFITS_PAID", label: "待遇支出", higherIsBetter: false },
    { by: "BENEFICIARIES", label: "待遇领取人数", higherIsBetter: false }
  ];
  var MAX_MONTHS = 36;

  var state = { seq: 0, rankSeq: 0, charts: {} };

  function $(sel) { return document.querySelector(sel); }

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") n.textContent = attrs[k];
      else if (k === "className") n.className = attrs[k];
      else n.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { n.appendChild(c); });
    return n;
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function gql(query, variables) {
    return fetch("/graphql", {
      method: "POST", cache: "no-store", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "Authorization": "Bearer " + token() },
      body: JSON.stringify({ query: query, variables: variables })
    }).then(function (r) { return r.json(); });
  }

  /* "1234567.50" -> "1,234,567.50" by string manipulation only (never a float). */
  function fmt(s) {
    if (s === null || s === undefined) return "—";
    var m = /^(-?)(\d+)((?:\.\d+)?)$/.exec(String(s));
    return m ? m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + m[3] : String(s);
  }

  function months(from, to) {
    var out = [], y = +from.slice(0, 4), m = +from.slice(5, 7);
    var ty = +to.slice(0, 4), tm = +to.slice(5, 7);
    while ((y < ty || (y === ty && m <= tm)) && out.length < MAX_MONTHS) {
      out.push(y + "-" + (m < 10 ? "0" : "") + m);
      m += 1; if (m > 12) { m = 1; y += 1; }
    }
    return out;
  }

  function later(a, b) { return a > b ? a : b; }

  function chart(name, node, option) {
    if (!window.echarts || typeof window.echarts.init !== "function") return;
    if (!state.charts[name]) state.charts[name] = window.echarts.init(node, null, { renderer: "canvas" });
    state.charts[name].setOption(option, true);
  }

  /* ------------------------------------------------------------------ panels */

  function build() {
    var anchor = $("#pool-panel");
    if (!anchor || $("#fund-panel")) return;
    var schemeSel = el("select", { id: "fund-scheme", "aria-label": "险种" });
    Object.keys(SCHEME_NAMES).forEach(function (s) {
      schemeSel.appendChild(el("option", { value: s, text: SCHEME_NAMES[s] }));
    });
    var fund = el("section", { id: "fund-panel", className: "panel", "data-state": "idle" }, [
      el("h3", { text: "基金收支" }, [el("small", { id: "fund-caption" })]),
      el("p", { className: "controls" }, [el("label", { text: "险种 " }, [schemeSel]),
        el("button", { type: "button", id: "fund-report-open", text: "公开报告（打印）" }),
        el("button", { type: "button", id: "fund-report-csv", text: "下载 CSV" })]),
      el("p", { id: "fund-note", className: "note" }),
      el("div", { id: "fund-cards", className: "cards" }),
      el("div", { className: "chart-row" }, [
        el("div", { id: "chart-fund-balance", className: "chart" }),
        el("div", { id: "chart-fund-flows", className: "chart" })]),
      el("div", { className: "table-wrap" }, [el("table", { id: "fund-flows", className: "figures" })])
    ]);
    var bySel = el("select", { id: "ranking-by", "aria-label": "指标" });
    INDICATORS.forEach(function (i) { bySel.appendChild(el("option", { value: i.by, text: i.label })); });
    var ranking = el("section", { id: "ranking-panel", className: "panel", "data-state": "idle" }, [
      el("h3", { text: "下级排名" }, [el("small", { id: "ranking-caption" })]),
      el("p", { className: "controls" }, [el("label", { text: "指标 " }, [bySel])]),
      el("p", { id: "ranking-note", className: "note" }),
      el("div", { className: "chart-row" }, [
        el("div", { className: "table-wrap" }, [el("h4", { text: "最差十名" }),
          el("table", { id: "ranking-worst", className: "figures" })]),
        el("div", { className: "table-wrap" }, [el("h4", { text: "最好十名" }),
          el("table", { id: "ranking-best", className: "figures" })])])
    ]);
    anchor.parentNode.insertBefore(fund, anchor.nextSibling);
    fund.parentNode.insertBefore(ranking, fund.nextSibling);
    schemeSel.addEventListener("change", load);
    bySel.addEventListener("change", loadRanking);
    $("#fund-report-open").addEventListener("click", function () { openReport("html"); });
    $("#fund-report-csv").addEventListener("click", function () { openReport("csv"); });
  }

  function readView() {
    /* the region the page shows, not one typed and not yet asked for */
    return { region: ($("#main") || { dataset: {} }).dataset.region, from: ($("#period-from") || {}).value,
             to: ($("#period-to") || {}).value, scheme: $("#fund-scheme").value };
  }

  function load() {
    var v = readView();
    if (!/^\d{6}$/.test(v.region || "") || !/^\d{4}-\d{2}$/.test(v.from) || !/^\d{4}-\d{2}$/.test(v.to)) return;
    loadFund(v);
    loadRanking();
  }

  function fundQuery(ms) {
    return "query FundPanel($region: ID!, $scheme: Scheme!, $to: Month!, $period: PeriodInput!) {\n" +
      " region(code: $region) { code name tier pool(scheme: $scheme, asOf: $to) { id level openedFrom closedAfter\n" +
      "  region { code name }\n" +
      ms.map(function (m, i) { return "  b" + i + ": balance(asOf: \"" + m + "\")\n"; }).join("") +
      "  account(period: $period) { openingBalance totalIncome totalExpenditure surplus closingBalance\n" +
      "   monthsOfPayment income { category label amount } expenditure { category label amount } } } } }";
  }

  function setState(id, s) { $(id).setAttribute("data-state", s); }

  function loadFund(v) {
    var seq = ++state.seq;
    setState("#fund-panel", "loading");
    /* The pool covering the region at the period's end; its account over the months of the
       period it covers. The months before it opened are left out of the balance line. */
    gql("query($region: ID!, $scheme: Scheme!, $to: Month!) { region(code: $region) { code name tier " +
        "pool(scheme: $scheme, asOf: $to) { openedFrom } } }", { region: v.region, scheme: v.scheme, to: v.to })
      .then(function (first) {
        var r = first.data && first.data.region;
        var opened = r && r.pool ? r.pool.openedFrom : v.from;
        var from = later(v.from, opened);
        var ms = months(from, v.to);
        return gql(fundQuery(ms), { region: v.region, scheme: v.scheme, to: v.to,
                                    period: { from: from, to: v.to } })
          .then(function (res) { return { res: res, ms: ms, from: from }; });
      })
      .then(function (x) {
        if (seq !== state.seq) return;
        renderFund(v, x.res, x.ms, x.from);
      })
      .catch(function (e) {
        if (seq !== state.seq) return;
        $("#fund-note").textContent = "加载失败：" + e.message;
        setState("#fund-panel", "error");
      });
  }

  function renderFund(v, res, ms, from) {
    var r = res.data && res.data.region;
    var cards = $("#fund-cards"), table = $("#fund-flows");
    cards.textContent = ""; table.textContent = "";
    $("#fund-caption").textContent = "（" + SCHEME_NAMES[v.scheme] + "，" + from + " 至 " + v.to + "）";
    if (!r) {
      $("#fund-note").textContent = (res.errors && res.errors[0] ? res.errors[0].message : "无数据");
      setState("#fund-panel", "error");
      return;
    }
    var p = r.pool;
    if (!p && res.errors && res.errors.length) {
      /* the pool could not be read (a node down): unknown, not "not pooled here" */
      $("#fund-note").textContent = "无法读取统筹基金：" + res.errors.map(function (e) { return e.message; }).join("；");
      chart("balance", $("#chart-fund-balance"), { series: [] });
      chart("flows", $("#chart-fund-flows"), { series: [] });
      setState("#fund-panel", "error");
      return;
    }
    if (!p) {
      $("#fund-note").textContent = "本地区该险种未在本级统筹（由下级各统筹区分别统筹），请下钻查看。";
      chart("balance", $("#chart-fund-balance"), { series: [] });
      chart("flows", $("#chart-fund-flows"), { series: [] });
      setState("#fund-panel", "ready");
      return;
    }
    $("#fund-note").textContent = p.region.code === r.code ? "本地区统筹，基金 " + p.id :
      "由" + p.region.name + "（" + p.region.code + "）统筹：以下为该统筹基金 " + p.id + " 的收支";
    $("#fund-note").setAttribute("data-pool", p.id);
    var a = p.account;
    [["closingBalance", "期末结余（元）", fmt(a.closingBalance)],
     ["totalIncome", "收入合计（元）", fmt(a.totalIncome)],
     ["totalExpenditure", "支出合计（元）", fmt(a.totalExpenditure)],
     ["monthsOfPayment", "可支付月数", a.monthsOfPayment === null ? "—" : a.monthsOfPayment]
    ].forEach(function (c) {
      cards.appendChild(el("div", { className: "card", "data-field": c[0] }, [
        el("div", { className: "label", text: c[1] }), el("div", { className: "value", text: c[2] })]));
    });
    var body = el("tbody");
    function rows(side, list) {
      list.forEach(function (f) {
        body.appendChild(el("tr", { "data-category": f.category, "data-side": side }, [
          el("th", { text: (side === "in" ? "收入 · " : "支出 · ") + f.label }),
          el("td", { className: "num", "data-field": "amount", text: fmt(f.amount) })]));
      });
    }
    rows("in", a.income);
    rows("out", a.expenditure);
    table.appendChild(el("thead", {}, [el("tr", {}, [el("th", { text: "收支项目" }), el("th", { text: "金额（元）" })])]));
    table.appendChild(body);
    var balances = ms.map(function (_, i) { return p["b" + i]; });
    table.setAttribute("data-balances", JSON.stringify(ms.map(function (m, i) { return [m, balances[i]]; })));
    chart("balance", $("#chart-fund-balance"), {
      title: { text: "月末结余（元）", textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" }, grid: { left: 90, right: 20, top: 40, bottom: 30 },
      xAxis: { type: "category", data: ms }, yAxis: { type: "value", scale: true },
      series: [{ type: "line", name: "结余", data: balances.map(Number) }]
    });
    var cats = a.income.concat(a.expenditure).filter(function (f) { return f.amount !== "0.00"; });
    chart("flows", $("#chart-fund-flows"), {
      title: { text: "分项收支（元）", textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" }, grid: { left: 150, right: 20, top: 40, bottom: 30 },
      xAxis: { type: "value" }, yAxis: { type: "category", data: cats.map(function (f) { return f.label; }) },
      series: [{ type: "bar", data: cats.map(function (f) {
        return { value: Number(f.amount), itemStyle: { color: a.income.indexOf(f) >= 0 ? "#4a9a5b" : "#c23531" } };
      }) }]
    });
    setState("#fund-panel", "ready");
  }

  var RANKING_QUERY =
    "query RankingPanel($region: ID!, $tier: Tier!, $period: PeriodInput!, $scheme: Scheme!, $by: RankBy!," +
    " $bestFirst: Boolean!, $worstFirst: Boolean!) {\n" +
    " best: ranking(region: $region, tier: $tier, period: $period, scheme: $scheme, by: $by," +
    " descending: $bestFirst, first: 10) { count complete missing { code name } entries { rank value region { code name } } }\n" +
    " worst: ranking(region: $region, tier: $tier, period: $period, scheme: $scheme, by: $by," +
    " descending: $worstFirst, first: 10) { count entries { rank value region { code name } } } }";

  function loadRanking() {
    var v = readView();
    var ind = INDICATORS.filter(function (i) { return i.by === $("#ranking-by").value; })[0];
    var seq = ++state.rankSeq;
    setState("#ranking-panel", "loading");
    gql("query($r: ID!) { region(code: $r) { tier } }", { r: v.region }).then(function (t) {
      var tier = t.data && t.data.region ? TIER_BELOW[t.data.region.tier] : null;
      if (!tier) return { none: true };
      return gql(RANKING_QUERY, { region: v.region, tier: tier, period: { from: v.from, to: v.to }, scheme: v.scheme,
                      by: ind.by, bestFirst: ind.higherIsBetter, worstFirst: !ind.higherIsBetter })
        .then(function (res) { return { res: res, tier: tier }; });
    }).then(function (x) {
      if (seq !== state.rankSeq) return;
      renderRanking(v, ind, x);
    }).catch(function (e) {
      if (seq !== state.rankSeq) return;
      $("#ranking-note").textContent = "加载失败：" + e.message;
      setState("#ranking-panel", "error");
    });
  }

  function rankTable(table, ranking) {
    table.textContent = "";
    table.appendChild(el("thead", {}, [el("tr", {}, [el("th", { text: "名次" }), el("th", { text: "区划" }),
      el("th", { text: "数值" })])]));
    var body = el("tbody");
    ((ranking && ranking.entries) || []).forEach(function (e) {
      body.appendChild(el("tr", { "data-region": e.region.code }, [
        el("td", { className: "num", "data-field": "rank", text: String(e.rank) }),
        el("td", { text: e.region.name + "（" + e.region.code + "）" }),
        el("td", { className: "num", "data-field": "value", text: e.value === null ? "—" : fmt(e.value) })]));
    });
    table.appendChild(body);
  }

  function renderRanking(v, ind, x) {
    if (x.none) {
      $("#ranking-note").textContent = "县级区划没有下级区划可排名。";
      rankTable($("#ranking-best"), null); rankTable($("#ranking-worst"), null);
      setState("#ranking-panel", "ready");
      return;
    }
    var d = x.res.data || {};
    if (!d.best) {
      $("#ranking-note").textContent = x.res.errors && x.res.errors[0] ? x.res.errors[0].message : "无数据";
      setState("#ranking-panel", "error");
      return;
    }
    $("#ranking-caption").textContent = "（" + SCHEME_NAMES[v.scheme] + "，共 " + d.best.count + " 个" +
      TIER_LABEL[x.tier] + "级区划，" + v.from + " 至 " + v.to + "）";
    $("#ranking-note").textContent = d.best.complete ? "" : "数据不完整：" +
      d.best.missing.map(function (m) { return m.name; }).join("、") + " 的节点未应答。";
    rankTable($("#ranking-best"), d.best);
    rankTable($("#ranking-worst"), d.worst);
    setState("#ranking-panel", "ready");
  }

  /* The public report: fetched with the token, shown from a blob (no token in any URL). */
  function openReport(format) {
    var v = readView();
    var year = v.to.slice(0, 4);
    var half = v.to.slice(5, 7) <= "06" ? "&half=1" : "";
    var win = format === "html" ? window.open("", "_blank") : null;
    fetch("/reports/fund?region=" + encodeURIComponent(v.region) + "&year=" + year + half + "&format=" + format,
          { headers: { "Authorization": "Bearer " + token() }, cache: "no-store" })
      .then(function (r) {
        if (r.ok) return r.blob();
        /* a refusal is not a report: say why, download nothing */
        return r.json().catch(function () { return {}; }).then(function (body) {
          var e = body.errors && body.errors[0];
          throw new Error(e && e.message ? e.message : "HTTP " + r.status);
        });
      })
      .then(function (b) {
        var url = URL.createObjectURL(b);
        if (win) { win.location = url; return; }
        var a = el("a", { href: url, download: "fund-report-" + v.region + "-" + year + ".csv" });
        document.body.appendChild(a); a.click(); a.remove();
      })
      .catch(function (e) {
        if (win) win.close();
        $("#fund-note").textContent = "无法生成基金报告：" + e.message;
        setState("#fund-panel", "error");
      });
  }

  /* The page shows no region (refused, or the token dropped): no figures of the one before. */
  function clearPanels() {
    state.seq += 1; state.rankSeq += 1;
    ["#fund-cards", "#fund-flows", "#fund-note", "#fund-caption", "#ranking-best", "#ranking-worst",
     "#ranking-caption", "#ranking-note"].forEach(function (id) { if ($(id)) $(id).textContent = ""; });
    if ($("#fund-note")) $("#fund-note").removeAttribute("data-pool");
    chart("balance", $("#chart-fund-balance"), { series: [] });
    chart("flows", $("#chart-fund-flows"), { series: [] });
    setState("#fund-panel", "idle");
    setState("#ranking-panel", "idle");
  }

  function start() {
    build();
    var main = $("#main");
    if (!main || !$("#fund-panel")) return;
    new MutationObserver(function () {
      if (main.getAttribute("data-state") === "ready") load();
      else if (main.getAttribute("data-state") === "error") clearPanels();
    }).observe(main, { attributes: true, attributeFilter: ["data-state"] });
    /* a live answer moved the page's figures: these move with them */
    document.addEventListener("tierfed:dashboard-updated", load);
    document.addEventListener("tierfed:token-dropped", clearPanels);
    window.addEventListener("resize", function () {
      Object.keys(state.charts).forEach(function (k) { state.charts[k].resize(); });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
