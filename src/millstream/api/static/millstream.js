// Millstream web UI: live fragments, log tailing and actions through the REST API.
// Plain ES2017, no build step. Licence: Apache-2.0, as the rest of Millstream.
(function () {
  "use strict";
  var LIVE_MS = 2000, LOG_MS = 1000;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function toast(text, bad) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = text;
    t.className = bad ? "bad" : "good";
    t.hidden = false;
    clearTimeout(t._timer);
    t._timer = setTimeout(function () { t.hidden = true; }, bad ? 8000 : 3000);
  }

  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(url, opts).then(function (r) {
      if (r.status === 204) return {};
      return r.json().catch(function () { return { detail: r.statusText }; }).then(function (data) {
        if (!r.ok) { var e = new Error(data.detail || ("HTTP " + r.status)); e.status = r.status; throw e; }
        return data;
      });
    });
  }

  // -- live fragments -------------------------------------------------------------------------
  function typing(el) {
    var a = document.activeElement;
    return a && el.contains(a) && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT");
  }

  function refresh(el) {
    if (el._busy || (typing(el) && el._last !== null)) return Promise.resolve();  // null: a panel just (re)loaded
    el._busy = true;
    return fetch(el.getAttribute("data-live"), { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
      if (!r.ok) return;
      return r.text().then(function (html) {
        if (html === el._last) return;
        el._last = html;
        var keep = el.getAttribute("data-keep"), kept = {};
        if (keep) el.querySelectorAll(keep).forEach(function (k) { if (k.id) kept[k.id] = k; });
        // What the user did on the old content survives the swap: scrolled panes, open details.
        var scrolled = Array.prototype.map.call(el.querySelectorAll(".grid-wrap,.graph-wrap,.gantt-wrap"), function (w) {
          return [w.scrollLeft, w.scrollTop];
        });
        var opened = Array.prototype.map.call(el.querySelectorAll("details"), function (d) { return d.open; });
        el.innerHTML = html;
        el.querySelectorAll(".grid-wrap,.graph-wrap,.gantt-wrap").forEach(function (w, i) {
          if (scrolled[i]) { w.scrollLeft = scrolled[i][0]; w.scrollTop = scrolled[i][1]; }
        });
        el.querySelectorAll("details").forEach(function (d, i) { if (opened[i]) d.open = true; });
        Object.keys(kept).forEach(function (id) {
          var fresh = el.querySelector("#" + CSS.escape(id));
          if (fresh) fresh.replaceWith(kept[id]);
        });
        init(el);
      });
    }).catch(function () {}).then(function () { el._busy = false; });
  }

  function refreshAll() {
    document.querySelectorAll("[data-live]").forEach(refresh);
  }

  setInterval(function () { if (!document.hidden) refreshAll(); }, LIVE_MS);

  // -- logs -----------------------------------------------------------------------------------
  function tail(pre) {
    if (pre._tailing) return;
    pre._tailing = true;
    pre._offset = pre._offset || 0;
    var url = pre.getAttribute("data-log");
    function step() {
      if (!document.body.contains(pre)) return;
      fetch(url + "&offset=" + pre._offset, { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("login"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (d) {
        if (d.content) {
          if (pre._placeholder) { pre.textContent = ""; pre._placeholder = false; }
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.appendChild(document.createTextNode(d.content));
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }
        pre._offset = d.next_offset;
        if (d.complete) {
          pre.classList.remove("following");
          pre.classList.add("complete");
          if (!pre.textContent || pre._placeholder) {
            pre.textContent = d.found ? "(empty log)" : "(no log for this attempt here, nor in the object store)";
          }
        } else {
          if (!d.found && !pre.textContent) {
            pre.textContent = "(waiting for the log: an attempt on another host shows its log once it ends)";
            pre._placeholder = true;
          }
          pre.classList.add("following");
          setTimeout(step, LOG_MS);
        }
      }).catch(function () { setTimeout(step, LOG_MS * 3); });
    }
    step();
  }

  // Task groups folded in the grid stay folded across refreshes.
  var folded = {};
  function applyFolds(root) {
    root.querySelectorAll("tr[data-groups]").forEach(function (tr) {
      var inside = tr.getAttribute("data-groups").split(" ");
      tr.hidden = inside.some(function (g) { return g && folded[g]; });
    });
    root.querySelectorAll("[data-group-toggle]").forEach(function (b) {
      var g = b.getAttribute("data-group-toggle");
      b.textContent = (folded[g] ? "▸ " : "▾ ") + g;
    });
  }

  function init(root) {
    root.querySelectorAll("pre[data-log]").forEach(tail);
    applyFolds(root);
  }

  // -- forms ----------------------------------------------------------------------------------
  function formBody(form) {
    var body = {};
    form.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (f) {
      var v = f.value;
      if (f.hasAttribute("data-bool")) { body[f.name] = f.checked; return; }
      if (v === "" && !f.hasAttribute("data-empty")) return;  // data-empty: "" is a value
      if (f.hasAttribute("data-json")) {
        try { v = JSON.parse(v); } catch (e) { throw new Error(f.name + " is not valid JSON: " + e.message); }
      } else if (f.hasAttribute("data-int")) { v = parseInt(v, 10); }
      else if (f.type === "datetime-local") { v = v + "Z"; }
      else if (f.type === "date") { v = v + "T00:00:00Z"; }
      body[f.name] = v;
    });
    return body;
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, function (_, k) { return encodeURIComponent(data[k]); });
  }

  function loadPanel(url) {
    var panel = document.getElementById("panel");
    if (!panel) { location.href = url.replace(/[?&]fragment=1/, ""); return; }
    if (url.indexOf("fragment=1") < 0) url += (url.indexOf("?") < 0 ? "?" : "&") + "fragment=1";
    panel.setAttribute("data-live", url);
    panel.hidden = false;
    panel._last = null;
    refresh(panel).then(function () { panel.scrollIntoView({ block: "nearest" }); });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.hasAttribute("data-panel-form")) {
      // find an instance: in the grid's panel if there is one, else as a page
      ev.preventDefault();
      var url = form.getAttribute("action") + "?" + new URLSearchParams(new FormData(form)).toString();
      if (document.getElementById("panel")) loadPanel(url);
      else location.href = url;
      return;
    }
    if (!form.hasAttribute("data-api")) return;
    ev.preventDefault();
    var err = form.querySelector("[data-error]");
    if (err) err.textContent = "";
    var parts = form.getAttribute("data-api").split(" "), body;
    try { body = formBody(form); } catch (e) { if (err) err.textContent = e.message; return; }
    // {name} in the URL is the form's field of that name, taken out of the body
    var url = parts[1].replace(/\{(\w+)\}/g, function (_, k) {
      var v = body[k];
      delete body[k];
      return encodeURIComponent(v === undefined ? "" : v);
    });
    api(parts[0], url, body).then(function (data) {
      var then = form.getAttribute("data-then");
      var dialog = form.closest("dialog");
      if (dialog) dialog.close();
      if (then === "reload") { toast("Done"); refreshAll(); }
      else if (then) { location.href = fill(then, data); }
    }).catch(function (e) { if (err) err.textContent = e.message; else toast(e.message, true); });
  });

  // -- clicks ---------------------------------------------------------------------------------
  document.addEventListener("click", function (ev) {
    var fold = ev.target.closest("[data-group-toggle]");
    if (fold) {
      var g = fold.getAttribute("data-group-toggle");
      folded[g] = !folded[g];
      applyFolds(document);
      return;
    }
    var el = ev.target.closest("[data-open],[data-close],[data-api],[data-dry-run],[data-panel],#panel [data-nav]");
    if (!el || el.tagName === "FORM") return;
    if (el.hasAttribute("data-open")) {
      var dlg = document.getElementById(el.getAttribute("data-open"));
      dlg.querySelectorAll("[data-error],[data-plan]").forEach(function (x) { x.textContent = ""; });
      dlg.showModal();
    } else if (el.hasAttribute("data-close")) {
      el.closest("dialog").close();
    } else if (el.hasAttribute("data-dry-run")) {
      var form = el.closest("form"), out = form.querySelector("[data-plan]"), err = form.querySelector("[data-error]");
      err.textContent = "";
      var parts = form.getAttribute("data-dry").split(" ");
      var body;
      try { body = formBody(form); } catch (e) { err.textContent = e.message; return; }
      api(parts[0], parts[1], body).then(function (p) {
        out.textContent = p.create + " run(s) to create, " + p.rerun + " to rerun, " + p.skip + " left alone";
      }).catch(function (e) { err.textContent = e.message; });
    } else if (el.hasAttribute("data-api")) {
      if (el.hasAttribute("data-confirm") && !confirm(el.getAttribute("data-confirm"))) return;
      var p = el.getAttribute("data-api").split(" ");
      var b = el.hasAttribute("data-body") ? JSON.parse(el.getAttribute("data-body")) : undefined;
      el.disabled = true;
      api(p[0], p[1], b).then(function (data) {
        if (data.status === false) toast(data.message || "Failed", true);  // a connection test
        else toast(data.count !== undefined ? data.count + " task instance(s) changed" : (data.message || "Done"));
        refreshAll();
      }).catch(function (e) { toast(e.message, true); }).then(function () { el.disabled = false; });
    } else {
      // a mapped task's instances, shown in the panel under the grid (and kept live there)
      ev.preventDefault();
      loadPanel(el.getAttribute("data-panel") || el.getAttribute("href"));
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    // The grid opens on its newest runs, at the right.
    document.querySelectorAll(".grid-wrap").forEach(function (w) { w.scrollLeft = w.scrollWidth; });
  });
})();
