// dojobber web view: the run picture and live updates.  Text from the
// records is only ever set with textContent, never parsed as HTML.
"use strict";
(function () {
  var block = document.getElementById("page-data");
  if (!block) { return; }
  var page = JSON.parse(block.textContent);
  var styles = page.styles || {};

  function visible(text) {
    return String(text === null || text === undefined ? "" : text).replace(
      /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
      function (c) { return "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"); });
  }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = visible(text); }
    return node;
  }
  function clock(seconds) {
    var d = new Date(seconds * 1000);
    var pad = function (n, w) { return String(n).padStart(w || 2, "0"); };
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      "." + pad(d.getMilliseconds(), 3);
  }
  function duration(s) {
    if (s === null || s === undefined) { return ""; }
    if (s < 0.001) { return Math.round(s * 1e6) + " \u00b5s"; }
    if (s < 1) { return (s * 1000).toPrecision(3).replace(/\.?0+$/, "") + " ms"; }
    if (s < 120) { return s.toPrecision(3).replace(/\.?0+$/, "") + " s"; }
    return (s / 60).toPrecision(3).replace(/\.?0+$/, "") + " min";
  }
  var LEVELS = { 10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL" };

  // ---- the picture -------------------------------------------------------
  var graph = document.getElementById("graph");
  var nodes = {};        // job name -> its <g> in the picture
  var graphLoaded = false;
  var graphLoading = false;

  function paint(name, status) {
    var g = nodes[visible(name)];
    var style = styles[status];
    if (!g || !style) { return; }
    g.setAttribute("class", "node job " + status);
    var shapes = g.querySelectorAll("path, polygon, ellipse");
    for (var i = 0; i < shapes.length; i++) {
      shapes[i].setAttribute("fill", style.fill);
      shapes[i].setAttribute("stroke", style.border);
      shapes[i].setAttribute("stroke-width", status === "failed" || status === "would_run" ? "2" : "1");
      if (status === "blocked" || status === "pending" || status === "not_checked") {
        shapes[i].setAttribute("stroke-dasharray", "5,2");
      } else {
        shapes[i].removeAttribute("stroke-dasharray");
      }
    }
    var texts = g.querySelectorAll("text");
    for (var j = 0; j < texts.length; j++) { texts[j].setAttribute("fill", style.font); }
  }

  function loadGraph(url) {
    if (!graph || graphLoading) { return; }
    graphLoading = true;
    var status = document.getElementById("graph-status");
    fetch(url || graph.dataset.svg, { credentials: "same-origin" }).then(function (response) {
      return response.text().then(function (text) { return [response, text]; });
    }).then(function (pair) {
      var response = pair[0], text = pair[1];
      graphLoading = false;
      if (!response.ok) {
        var message = "the graph cannot be drawn";
        try {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var err = doc.getElementById("error");
          if (err) { message = err.textContent; }
        } catch (e) { /* keep the plain message */ }
        if (status) { status.textContent = message; }
        return;
      }
      // The SVG was cleaned by the server (no script, no handlers) and the
      // page's Content-Security-Policy runs no inline script anyway.
      graph.innerHTML = text;
      graphLoaded = true;
      nodes = {};
      var groups = graph.querySelectorAll("g.node[data-job]");
      for (var i = 0; i < groups.length; i++) { nodes[groups[i].getAttribute("data-job")] = groups[i]; }
      var drawn = response.headers.get("x-jobs-drawn");
      var total = response.headers.get("x-jobs-total");
      var note = document.getElementById("graph-note");
      var full = document.getElementById("graph-full");
      if (note && drawn && total) {
        note.textContent = drawn === total ? "all " + total + " jobs drawn; click a job for its page"
          : "showing " + drawn + " of " + total + " jobs (failures and their path to the root first); click a job for its page";
      }
      if (full) { full.hidden = !(drawn && total && drawn !== total); }
      graph.dataset.drawn = drawn || "";
      document.body.dataset.graph = "ready";
      if (window.performance && performance.mark) { performance.mark("dojobber-graph-ready"); }
    }).catch(function () {
      graphLoading = false;
      if (status) { status.textContent = "the graph could not be fetched"; }
    });
  }

  if (graph && graph.dataset.stored === "yes") { loadGraph(); }
  var fullLink = document.getElementById("graph-full");
  if (fullLink && graph) {
    fullLink.addEventListener("click", function (event) {
      event.preventDefault();
      graph.classList.add("whole");
      var status = el("p", "muted", "drawing all " + (graph.dataset.drawn ? "" : "") + "jobs\u2026");
      status.id = "graph-status";
      graph.replaceChildren(status);
      loadGraph(graph.dataset.full);
    });
  }

  // ---- the table of jobs -------------------------------------------------
  var rows = {};
  var table = document.getElementById("jobs");
  if (table) {
    var trs = table.querySelectorAll("tbody tr[data-job]");
    for (var i = 0; i < trs.length; i++) { rows[trs[i].getAttribute("data-job")] = trs[i]; }
  }
  var jobsBody = table ? table.querySelector("tbody") : null;
  var filtered = /[?&]status=/.test(window.location.search);
  function addRow(job) {
    // A job the page did not list (its graph was not stored yet): add it.
    var tr = document.createElement("tr");
    tr.setAttribute("data-job", job.name);
    tr.appendChild(el("td", "muted", ""));
    var name = el("td", "name");
    var a = el("a", "", job.name);
    a.href = job.url;
    name.appendChild(a);
    tr.appendChild(name);
    var cell = el("td");
    cell.appendChild(el("span", "status"));
    tr.appendChild(cell);
    tr.appendChild(el("td", "tries"));
    tr.appendChild(el("td"));
    tr.appendChild(el("td", "took"));
    tr.appendChild(el("td", "error"));
    jobsBody.appendChild(tr);
    rows[job.name] = tr;
    return tr;
  }
  function updateRow(job) {
    var tr = rows[job.name];
    if (!tr && jobsBody && !filtered) { tr = addRow(job); }
    if (!tr) { return; }
    var badge = tr.querySelector(".status");
    badge.className = "status " + job.status;
    badge.textContent = job.status;
    tr.querySelector(".tries").textContent = job.tries || "";
    tr.querySelector(".took").textContent = duration(job.duration);
    tr.classList.remove("flash");
    void tr.offsetWidth;
    tr.classList.add("flash");
  }

  function updateRun(run) {
    var outcome = document.getElementById("outcome");
    if (outcome) { outcome.className = "outcome " + run.outcome; outcome.textContent = run.outcome; }
    var counts = document.querySelectorAll("[data-count]");
    for (var i = 0; i < counts.length; i++) {
      var key = counts[i].getAttribute("data-count");
      if (run.counts && key in run.counts) { counts[i].textContent = run.counts[key]; }
    }
    var took = document.getElementById("took");
    if (took && run.duration !== null && run.duration !== undefined) { took.textContent = duration(run.duration); }
  }

  // ---- log lines ----------------------------------------------------------
  var logs = document.querySelector("#logs tbody");
  function addLog(line) {
    if (!logs) { return; }
    var empty = logs.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var level = LEVELS[line.level] || ("Level " + line.level);
    var tr = el("tr", "level-" + level.toLowerCase() + " flash");
    tr.appendChild(el("td", "", clock(line.created)));
    if (page.page === "run") {
      var td = el("td", "name");
      var a = el("a", "", line.job);
      a.href = line.job_url;
      td.appendChild(a);
      tr.appendChild(td);
    }
    tr.appendChild(el("td", "", line.phase + (line.attempt ? " #" + line.attempt : "")));
    tr.appendChild(el("td", "", level));
    if (page.page === "job") { tr.appendChild(el("td", "", line.logger)); }
    var message = el("td");
    message.appendChild(el("pre", "", line.message));
    tr.appendChild(message);
    logs.appendChild(tr);
  }

  function updateJob(job) {
    var status = document.getElementById("job-status");
    if (status) { status.className = "status " + job.status; status.textContent = job.status; }
    var tries = document.getElementById("job-tries");
    if (tries) { tries.textContent = job.tries; }
    var took = document.getElementById("job-took");
    if (took) { took.textContent = duration(job.duration); }
    if (job.exception) {
      document.getElementById("failure").hidden = false;
      document.getElementById("exception").textContent = visible(job.exception);
      document.getElementById("traceback").textContent = visible(job.traceback || "");
    }
  }

  // ---- live updates ---------------------------------------------------------
  if (page.live && window.EventSource) {
    var url = page.live + (page.live.indexOf("?") >= 0 ? "&" : "?") + "logs_after=" + page.logs_after;
    var source = new EventSource(url);
    var banner = document.getElementById("live");
    source.addEventListener("update", function (message) {
      var event = JSON.parse(message.data);
      updateRun(event.run);
      (event.jobs || []).forEach(function (job) {
        paint(job.name, job.status);
        updateRow(job);
        if (page.page === "job" && job.name === page.job) { updateJob(job); }
      });
      if (event.job) { updateJob(event.job); }
      (event.logs || []).forEach(addLog);
      if (event.graph_stored && !graphLoaded) { loadGraph(); }
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    });
    function stop(text) {
      source.close();
      if (banner) { banner.textContent = text; banner.classList.add("ended"); }
      document.body.dataset.live = "ended";
    }
    source.addEventListener("end", function () {
      stop("the run has ended");
      if (graph) { graphLoaded = false; loadGraph(); }  // the final picture
    });
    source.addEventListener("gone", function () { stop("this run is no longer in the records"); });
    document.body.dataset.live = "open";
  }
})();
