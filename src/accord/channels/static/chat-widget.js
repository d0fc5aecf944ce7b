/* Accord web chat widget. Embed with one tag on any page:
 *   <script src="https://support.example.com/chat/widget.js" async></script>
 * It talks to the Accord node it was loaded from over a WebSocket, keeps the visitor's
 * token in localStorage (so a reload keeps the conversation), reconnects with backoff and
 * resends what was not acknowledged. Everything shown is set as text, never as HTML.
 */
(function () {
  "use strict";
  if (window.__accordChat) return;
  window.__accordChat = true;

  var script = document.currentScript;
  var base = new URL(script ? script.src : "/chat/widget.js", window.location.href);
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/chat/ws";
  var KEY = "accord-chat-visitor:" + base.host;
  var title = (script && script.getAttribute("data-title")) || "Chat with us";

  var style = document.createElement("style");
  style.textContent =
    "#accord-chat{position:fixed;right:16px;bottom:16px;z-index:2147483000;font:15px/1.4 system-ui,sans-serif;color:#1b1b1b}" +
    "#accord-chat button{font:inherit;cursor:pointer}" +
    "#accord-chat .ac-open{background:#0b5cad;color:#fff;border:0;border-radius:24px;padding:10px 18px}" +
    "#accord-chat .ac-panel{display:none;width:320px;max-width:calc(100vw - 32px);height:440px;max-height:calc(100vh - 32px);background:#fff;border:1px solid #8a8a8a;border-radius:8px;flex-direction:column;box-shadow:0 4px 16px rgba(0,0,0,.2)}" +
    "#accord-chat.ac-shown .ac-panel{display:flex}#accord-chat.ac-shown .ac-open{display:none}" +
    "#accord-chat header{display:flex;justify-content:space-between;align-items:center;padding:8px 12px;background:#0b5cad;color:#fff;border-radius:8px 8px 0 0}" +
    "#accord-chat header button{background:none;border:0;color:#fff;font-size:18px}" +
    "#accord-chat .ac-log{flex:1;overflow-y:auto;padding:8px 12px}" +
    "#accord-chat .ac-msg{margin:6px 0;padding:6px 10px;border-radius:10px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}" +
    "#accord-chat .ac-mine{background:#e3eefb;margin-left:auto}#accord-chat .ac-theirs{background:#f1f1f1}" +
    "#accord-chat .ac-who{display:block;font-size:12px;color:#4a4a4a}" +
    "#accord-chat form{display:flex;gap:6px;padding:8px;border-top:1px solid #ddd}" +
    "#accord-chat input{flex:1;font:inherit;padding:6px;border:1px solid #8a8a8a;border-radius:4px}" +
    "#accord-chat .ac-status{font-size:12px;color:#4a4a4a;padding:0 12px}";
  document.head.appendChild(style);

  var root = document.createElement("div");
  root.id = "accord-chat";
  root.innerHTML =
    '<button type="button" class="ac-open"></button>' +
    '<section class="ac-panel" role="dialog" aria-label="">' +
    '<header><strong class="ac-title"></strong><button type="button" class="ac-close" aria-label="Close chat">×</button></header>' +
    '<div class="ac-log" role="log" aria-live="polite"></div>' +
    '<div class="ac-offer"></div>' +
    '<div class="ac-status" aria-live="polite"></div>' +
    '<form class="ac-send"><label class="ac-hidden" for="ac-text" style="position:absolute;left:-9999px">Message</label>' +
    '<input id="ac-text" name="text" autocomplete="off" maxlength="4000" placeholder="Type a message">' +
    '<button type="submit">Send</button></form>' +
    '<form class="ac-contact"><label for="ac-contact" style="position:absolute;left:-9999px">Email or phone to reach you</label>' +
    '<input id="ac-contact" name="contact" autocomplete="email" placeholder="Email or phone, to reach you later">' +
    '<button type="submit">Leave</button></form>' +
    "</section>";
  root.querySelector(".ac-open").textContent = title;
  root.querySelector(".ac-title").textContent = title;
  root.querySelector(".ac-panel").setAttribute("aria-label", title);
  document.body.appendChild(root);

  var log = root.querySelector(".ac-log");
  var status = root.querySelector(".ac-status");
  var offer = root.querySelector(".ac-offer");
  var input = root.querySelector("#ac-text");
  var shown = {};
  var pending = [];
  var socket = null;
  var delay = 500;
  var caseRef = null;

  function visitor() {
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }
  }
  function remember(token) {
    try { window.localStorage.setItem(KEY, token); } catch (e) { /* private mode */ }
  }
  function say(text) { status.textContent = text || ""; }
  function add(m) {
    if (shown[m.id]) return;
    shown[m.id] = true;
    var item = document.createElement("div");
    item.className = "ac-msg " + (m.mine ? "ac-mine" : "ac-theirs");
    var who = document.createElement("span");
    who.className = "ac-who";
    who.textContent = m.from;
    var text = document.createElement("span");
    text.textContent = m.text;
    item.appendChild(who);
    item.appendChild(text);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }
  function send(frame) {
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(frame));
  }
  function offerCases(cases) {
    offer.textContent = "";
    if (!cases || !cases.length) return;
    var p = document.createElement("p");
    p.className = "ac-status";
    p.textContent = "Is this about one of your open cases?";
    offer.appendChild(p);
    cases.forEach(function (c) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = "#" + c.number + " " + c.title;
      b.addEventListener("click", function () {
        caseRef = c.ref;
        offer.textContent = "";
        say("Your messages go to case #" + c.number + ".");
      });
      offer.appendChild(b);
    });
  }

  function connect() {
    say("Connecting…");
    socket = new WebSocket(wsUrl);
    socket.onopen = function () {
      delay = 500;
      send({ type: "hello", visitor: visitor() });
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "welcome") {
        remember(frame.visitor);
        (frame.messages || []).forEach(add);
        offerCases(frame.open_cases);
        say("");
        pending.forEach(send);
      } else if (frame.type === "message") {
        add(frame.message);
      } else if (frame.type === "ack") {
        pending = pending.filter(function (p) { return p.id !== frame.id; });
        if (frame.status === "held") say("Your message is with our team, who will answer.");
      } else if (frame.type === "contact") {
        say("Thank you: we can reach you at " + frame.value + ".");
      } else if (frame.type === "error") {
        say(frame.message);
      }
    };
    socket.onclose = function () {
      say("Reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }

  root.querySelector(".ac-open").addEventListener("click", function () {
    root.classList.add("ac-shown");
    input.focus();
    if (!socket) connect();
  });
  root.querySelector(".ac-close").addEventListener("click", function () {
    root.classList.remove("ac-shown");
  });
  root.querySelector(".ac-send").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var frame = { type: "message", id: Date.now().toString(36) + Math.random().toString(36).slice(2, 8), text: text };
    if (caseRef) frame["case"] = caseRef;
    pending.push(frame);
    send(frame);
    input.value = "";
  });
  root.querySelector(".ac-contact").addEventListener("submit", function (event) {
    event.preventDefault();
    var field = root.querySelector("#ac-contact");
    var value = field.value.trim();
    if (!value) return;
    send({ type: "contact", kind: value.indexOf("@") >= 0 ? "email" : "phone", value: value });
    field.value = "";
  });
  if (visitor()) { root.classList.add("ac-shown"); connect(); }
})();
