// Accord's pages: keyboard shortcuts and live updates. Every page works without it.
(function () {
  "use strict";
  var body = document.body;

  // -- the message of the last action survives the page reloading itself once -----------
  var flash = document.querySelector("p.flash");
  var kept = null;
  try { kept = window.sessionStorage.getItem("accord-flash"); window.sessionStorage.removeItem("accord-flash"); } catch (e) {}
  if (!flash && kept) {
    var main = document.getElementById("main");
    if (main) {
      flash = document.createElement("p");
      flash.className = "notice flash";
      flash.setAttribute("role", "status");
      flash.textContent = kept;
      var head = main.querySelector(".case-head");
      main.insertBefore(flash, head ? head.nextSibling : main.firstChild);
    }
  }
  var reload = function () {
    if (flash) { try { window.sessionStorage.setItem("accord-flash", flash.textContent); } catch (e) {} }
    window.location.reload();
  };

  // -- live updates: poll a change token; on change, refresh the list or the page --------
  var live = body.getAttribute("data-live");
  var unreadBox = document.querySelector("[data-unread]");
  var unreadSeen = unreadBox ? parseInt(unreadBox.textContent, 10) || 0 : 0;
  // the header's count of unread notifications, from the same poll
  var showUnread = function (n) {
    if (!unreadBox || typeof n !== "number") return false;
    var changed = n !== unreadSeen;
    unreadSeen = n;
    unreadBox.firstChild.nodeValue = String(n);
    unreadBox.hidden = n === 0;
    return changed;
  };
  if (live || unreadBox) {
    var interval = parseInt(body.getAttribute("data-live-interval") || "3000", 10);
    var last = null;
    var busy = false;
    var typing = function () {
      var el = document.activeElement;
      if (document.querySelector("input[name=case]:checked")) return true;  // a bulk choice in hand
      return el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type !== "submit")) && el.value;
    };
    var check = function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch("/web/changes", { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          var moreNotices = showUnread(data.unread);
          if (moreNotices && body.getAttribute("data-page") === "notifications" && !typing()) {
            window.location.reload();
            return;
          }
          if (!live) return;
          if (last !== null && data.token !== last) {
            var target = body.getAttribute("data-live-target");
            if (typing()) return;  // later: nothing the member is typing or ticking is lost
            if (target) {
              return fetch(live, { credentials: "same-origin" })
                .then(function (r) { return r.text(); })
                .then(function (html) {
                  var box = document.getElementById(target);
                  if (box) { box.innerHTML = html; selectRow(0, false); }
                  last = data.token;
                });
            } else {
              reload();
            }
          }
          last = data.token;
        })
        .catch(function () {})
        .then(function () { busy = false; });
    };
    check();
    window.setInterval(check, interval);
  }

  // -- collision notice: tell the node this member has the case open (and whether they
  // are typing a reply) every few seconds; show who else has it open or is typing ------
  var presence = document.getElementById("presence");
  if (presence && presence.getAttribute("data-presence") && window.fetch) {
    var beatUrl = presence.getAttribute("data-presence");
    var beatCsrf = presence.getAttribute("data-csrf");
    var reply = document.getElementById("reply-text");
    var lastKey = 0;
    if (reply) reply.addEventListener("input", function () { lastKey = Date.now(); });
    var beat = function () {
      if (document.hidden) return;
      var form = new URLSearchParams();
      form.set("csrf", beatCsrf);
      if (Date.now() - lastKey < 10000) form.set("typing", "true");
      fetch(beatUrl, { method: "POST", credentials: "same-origin", body: form, headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          presence.textContent = "";
          data.others.forEach(function (o) {
            var p = document.createElement("p");
            p.className = "notice collision";
            p.textContent = o.text;
            presence.appendChild(p);
          });
        })
        .catch(function () {});
    };
    window.setInterval(beat, 5000);
    window.addEventListener("pagehide", function () {
      if (!navigator.sendBeacon) return;
      var gone = new FormData();
      gone.set("csrf", beatCsrf);
      gone.set("leave", "true");
      navigator.sendBeacon(beatUrl, gone);
    });
  }

  // -- copy buttons: data-copy="text" or data-copy-from="id of an input" ------------------
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (b) {
    b.addEventListener("click", function () {
      var from = b.getAttribute("data-copy-from");
      var input = from ? document.getElementById(from) : null;
      var text = input ? input.value : b.getAttribute("data-copy");
      var done = function () { var was = b.textContent; b.textContent = "Copied"; window.setTimeout(function () { b.textContent = was; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {});
      } else if (input) {
        input.select(); try { document.execCommand("copy"); done(); } catch (e) {}
      }
    });
  });

  // -- canned replies: the chosen one (already filled for the case) goes into the reply ----
  var canned = document.querySelector("select[data-canned-target]");
  if (canned) {
    canned.addEventListener("change", function () {
      var option = canned.options[canned.selectedIndex];
      var box = document.getElementById(canned.getAttribute("data-canned-target"));
      var text = option && option.getAttribute("data-text");
      if (box && text) {
        box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n\n" + text : text;
        box.focus();
      }
      canned.selectedIndex = 0;
    });
  }

  // -- keyboard shortcuts ---------------------------------------------------------------
  var rows = function () { return Array.prototype.slice.call(document.querySelectorAll("tr[data-row]")); };
  var current = -1;
  function selectRow(i, focus) {
    var all = rows();
    if (!all.length) { current = -1; return; }
    current = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (r, j) { r.setAttribute("aria-selected", j === current ? "true" : "false"); });
    var link = all[current].querySelector("a.case-link");
    if (link && focus !== false) link.focus();
  }
  var help = document.getElementById("shortcuts");
  function toggleHelp() { if (help) help.hidden = !help.hidden; }
  var closer = document.querySelector("[data-close-shortcuts]");
  if (closer) closer.addEventListener("click", toggleHelp);
  function focusOn(id) { var el = document.getElementById(id); if (el) { el.focus(); el.scrollIntoView({ block: "center" }); } }
  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (pendingG) {
      pendingG = false;
      if (e.key === "i") { window.location.href = "/"; e.preventDefault(); }
      return;
    }
    switch (e.key) {
      case "/": var s = document.querySelector("[data-search]"); if (s) { s.focus(); e.preventDefault(); } break;
      case "j": selectRow(current + 1); e.preventDefault(); break;
      case "k": selectRow(current - 1); e.preventDefault(); break;
      case "o": case "Enter":
        if (current >= 0) { var a = rows()[current].querySelector("a.case-link"); if (a) { window.location.href = a.href; e.preventDefault(); } }
        break;
      case "x":
        if (current >= 0) { var box = rows()[current].querySelector("input[name=case]"); if (box) { box.checked = !box.checked; e.preventDefault(); } }
        break;
      case "g": pendingG = true; break;
      case "r": focusOn("reply-text"); e.preventDefault(); break;
      case "n": focusOn("note-text"); e.preventDefault(); break;
      case "p": focusOn("act_title"); e.preventDefault(); break;
      case "?": toggleHelp(); e.preventDefault(); break;
      case "Escape": if (help && !help.hidden) toggleHelp(); break;
    }
  });
})();
