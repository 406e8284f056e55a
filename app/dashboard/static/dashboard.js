// OpenWA dashboard: the public REST API and /events, nothing else. Every string from the
// server is set as text (textContent), never as markup: names and bodies come from WhatsApp.
"use strict";
(function () {
  var API = document.body.getAttribute("data-api");
  var RANK = {viewer: 0, operator: 1, admin: 2};
  var EVENTS = ["message.received", "message.sent", "message.ack", "message.failed", "message.revoked",
    "message.reaction", "session.status", "session.qr", "session.authenticated", "session.disconnected",
    "message.edited", "poll.vote"];  // message actions (issue 13.1)
  EVENTS.push("batch.completed");  // -- bulk sends (issue 13.5) ---
  var state = {key: sessionStorage.getItem("openwa.key"), role: sessionStorage.getItem("openwa.role"),
    scoped: sessionStorage.getItem("openwa.scoped") === "true", live: null, listeners: []};

  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k.slice(0, 2) === "on") { el.addEventListener(k.slice(2), v); } else { el.setAttribute(k, v === true ? "" : v); }
    });
    for (var i = 2; i < arguments.length; i++) { add(el, arguments[i]); }
    return el;
  }
  function add(el, child) {
    if (child === null || child === undefined || child === false) { return; }
    if (Array.isArray(child)) { child.forEach(function (c) { add(el, c); }); return; }
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  function can(role) { return RANK[state.role] >= RANK[role]; }
  // A button the key's role may use, else nothing at all (a viewer sees no write buttons).
  function btn(role, label, onclick, cls) {
    return can(role) ? h("button", {type: "button", "class": cls || null, onclick: onclick, "data-action": label}, label) : null;
  }
  function flash(text, isError) {
    var el = document.getElementById("flash");
    el.textContent = text || ""; el.className = isError ? "error" : "";
  }
  function api(method, path, body) {
    var opts = {method: method, headers: {"X-API-Key": state.key}};
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(API + path, opts).then(function (r) {
      if (r.status === 204) { return null; }
      return r.json().then(function (data) {
        if (!r.ok) {
          var msg = Array.isArray(data.message) ? data.message.join("; ") : data.message;
          if (r.status === 401) { logout(); }
          throw new Error(r.status + " " + msg);
        }
        return data;
      });
    });
  }
  function act(promise, done) {
    return promise.then(function (v) { flash(""); if (done) { done(v); } return v; },
      function (e) { flash(e.message, true); });
  }
  function onEvent(fn) { state.listeners.push(fn); }
  // rows: an array of <tr>, or a <tbody> that the page fills later.
  function table(headers, rows) {
    var body = rows instanceof Node && rows.tagName === "TBODY" ? rows : h("tbody", null, rows);
    return h("table", null, h("thead", null, h("tr", null, headers.map(function (t) { return h("th", null, t); }))), body);
  }
  function sel(id, options, value) {
    return h("select", {id: id}, options.map(function (o) {
      return h("option", {value: o[0], selected: o[0] === value}, o[1]);
    }));
  }

  // -- login --------------------------------------------------------------------------
  function login(key) {
    state.key = key;
    return fetch(API + "/auth/validate", {method: "POST", headers: {"X-API-Key": key}}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok || !body.valid) { throw new Error(Array.isArray(body.message) ? body.message.join("; ") : (body.message || "Invalid API key")); }
        sessionStorage.setItem("openwa.key", key); sessionStorage.setItem("openwa.role", body.role);
        sessionStorage.setItem("openwa.scoped", String(!!body.scoped));
        state.role = body.role; state.scoped = !!body.scoped;
      });
    });
  }
  function logout() {
    sessionStorage.clear(); state.key = null; state.role = null;
    if (state.live) { state.live.close(); state.live = null; }
    document.getElementById("app").hidden = true; document.getElementById("login").hidden = false;
  }
  function startApp() {
    document.getElementById("login").hidden = true; document.getElementById("app").hidden = false;
    document.getElementById("whoami").textContent = state.role;
    document.querySelectorAll("nav [data-role]").forEach(function (a) { a.hidden = !can(a.getAttribute("data-role")); });
    var pill = document.getElementById("live-state");
    state.live = LiveEvents(state.key, function (frame) {
      if (frame.type === "event") { state.listeners.forEach(function (fn) { fn(frame.payload); }); }
    }, function (on) { pill.textContent = on ? "live" : "offline"; pill.className = on ? "pill on" : "pill"; });
    if (state.scoped) {
      api("GET", "/sessions").then(function (list) { list.forEach(function (s) { state.live.subscribe(s.id); }); });
    } else { state.live.subscribe("*"); }
    route();
  }

  // -- pages --------------------------------------------------------------------------
  var pages = {};
  pages.overview = function (main) {
    api("GET", "/sessions/stats/overview").then(function (o) {
      var max = Math.max.apply(null, o.messagesByDay.map(function (d) { return d.total; }).concat([1]));
      add(main, [h("div", {"class": "cards"}, [["Sessions", o.total], ["Active", o.active], ["Ready", o.ready],
        ["Disconnected", o.disconnected], ["Messages today", o.messagesToday]].map(function (c) {
        return h("div", {"class": "card"}, c[0], h("b", {"data-stat": c[0]}, c[1]));
      })), h("div", {"class": "panel"}, h("h3", null, "Messages, last 7 days"),
        h("div", {"class": "bars"}, o.messagesByDay.map(function (d) {
          var bar = h("div", {"class": "bar", title: d.incoming + " in / " + d.outgoing + " out"});
          bar.style.height = Math.round(100 * d.total / max) + "px";
          return h("div", {"class": "barcol"}, bar, d.date.slice(5), h("br"), d.total);
        })))]);
      if (can("admin")) {
        api("GET", "/infra/status").then(function (s) {
          add(main, h("div", {"class": "panel"}, h("h3", null, "Hosts"), hostTable(s.hosts),
            h("h3", null, "Queues"), queueTable(s.queues)));
        });
      }
    });
  };
  function hostTable(hosts) {
    return table(["Host", "Live", "Sessions / capacity", "Last heartbeat"], hosts.map(function (x) {
      return h("tr", null, h("td", null, x.name), h("td", null, x.live ? "yes" : "no"),
        h("td", null, x.sessionsHeld + " / " + x.capacity), h("td", null, x.lastHeartbeat));
    }));
  }
  function queueTable(queues) {
    return table(["Queue", "Waiting"], Object.keys(queues).map(function (q) {
      return h("tr", null, h("td", null, q), h("td", null, queues[q] === null ? "?" : queues[q]));
    }));
  }

  pages.sessions = function (main) {
    var body = h("tbody"), qr = h("div", {"class": "panel qr", id: "qr-panel", hidden: true});
    var create = can("operator") ? h("form", {"class": "row", id: "create-session", onsubmit: function (e) {
      e.preventDefault();
      act(api("POST", "/sessions", {name: document.getElementById("new-session").value}), load);
    }}, h("input", {id: "new-session", placeholder: "session name", required: true, pattern: "[A-Za-z0-9_-]{3,50}"}),
      h("button", {type: "submit"}, "Create session")) : null;
    add(main, [create, h("table", null, h("thead", null, h("tr", null,
      ["Name", "Status", "Phone", "Actions"].map(function (t) { return h("th", null, t); }))), body), qr]);
    var shown = null;
    function showQr(s) {
      shown = s; qr.hidden = false; qr.textContent = "";
      var img = h("img", {id: "qr-image", alt: "QR code for " + s.name});
      var pair = h("form", {"class": "row", onsubmit: function (e) {
        e.preventDefault();
        act(api("POST", "/sessions/" + s.id + "/pairing-code", {phoneNumber: document.getElementById("pair-phone").value}),
          function (r) { document.getElementById("pair-code").textContent = r.pairingCode; });
      }}, h("input", {id: "pair-phone", placeholder: "phone number for a pairing code"}), h("button", {type: "submit"}, "Get pairing code"),
        h("code", {id: "pair-code"}));
      add(qr, [h("h3", null, "Link ", s.name), h("p", {id: "qr-status"}, "Waiting for a QR code…"), img, pair]);
      refreshQr();
    }
    function refreshQr() {
      if (!shown) { return; }
      api("GET", "/sessions/" + shown.id + "/qr").then(function (r) {
        var img = document.getElementById("qr-image");
        if (img) { img.src = r.qrCode; document.getElementById("qr-status").textContent = "Scan with WhatsApp → Linked devices"; }
      }, function () {});
    }
    function row(s) {
      var actions = [btn("operator", "Start", function () { act(api("POST", "/sessions/" + s.id + "/start"), function () { showQr(s); load(); }); }),
        btn("operator", "Stop", function () { act(api("POST", "/sessions/" + s.id + "/stop"), load); }),
        btn("operator", "Restart", function () { act(api("POST", "/sessions/" + s.id + "/restart"), load); }),
        btn("operator", "Logout", function () { act(api("POST", "/sessions/" + s.id + "/logout"), load); }),
        btn("operator", "QR", function () { showQr(s); }),
        btn("operator", "Delete", function () { if (confirm("Delete " + s.name + "?")) { act(api("DELETE", "/sessions/" + s.id), load); } }, "danger")];
      return h("tr", {"data-session": s.name}, h("td", null, s.name), h("td", {"class": "status"}, s.status),
        h("td", null, s.phone || ""), h("td", {"class": "row"}, actions));
    }
    function load() {
      api("GET", "/sessions").then(function (list) { body.textContent = ""; list.forEach(function (s) { add(body, row(s)); }); });
    }
    onEvent(function (p) {
      if (p.event === "session.status") {
        load();
        if (shown && p.sessionId === shown.id) {
          var st = document.getElementById("qr-status");
          if (st) { st.textContent = "Status: " + p.data.status; }
          if (p.data.status === "ready") { var img = document.getElementById("qr-image"); if (img) { img.remove(); } }
        }
      }
      if (p.event === "session.qr" && shown && p.sessionId === shown.id) { refreshQr(); }
    });
    load();
  };

  function sessionPicker(onPick, onlyReady) {
    var picker = h("select", {id: "session-pick", onchange: function () { onPick(picker.value); }});
    api("GET", "/sessions").then(function (list) {
      list.filter(function (s) { return !onlyReady || s.status === "ready"; }).forEach(function (s) {
        add(picker, h("option", {value: s.id}, s.name + " (" + s.status + ")"));
      });
      if (picker.value) { onPick(picker.value); }
    });
    return h("div", {"class": "row"}, "Session ", picker);
  }

  pages.chats = function (main) {
    var list = h("ul", {"class": "chatlist", id: "chat-list"}), thread = h("div", {"class": "thread", id: "thread"});
    var sid = null, chat = null;
    var send = can("operator") ? h("form", {"class": "row", id: "send-form", onsubmit: function (e) {
      e.preventDefault();
      var to = document.getElementById("send-to").value || chat, input = document.getElementById("send-text");
      act(api("POST", "/sessions/" + sid + "/messages/send-text", {chatId: to, text: input.value}), function () {
        input.value = "";
        if (!chat) { var id = to.indexOf("@") < 0 ? to + "@c.us" : to; addChat({id: id}); openChat(id); }
      });
    }}, h("input", {id: "send-to", placeholder: "chat id or phone (blank: open chat)"}),
      h("input", {id: "send-text", placeholder: "message", required: true, maxlength: 4096}), h("button", {type: "submit"}, "Send")) : null;
    // -- media (issue 12): a picked file goes out as base64 through the same REST routes
    function mediaRoute(file) {
      var type = (file.type || "").split("/")[0];
      return type === "image" || type === "video" || type === "audio" ? type : "document";
    }
    var sendFile = can("operator") ? h("form", {"class": "row", id: "send-media-form", onsubmit: function (e) {
      e.preventDefault();
      var to = document.getElementById("send-to").value || chat, picker = document.getElementById("send-file");
      var caption = document.getElementById("send-caption"), file = picker.files[0];
      if (!file || !to) { flash("pick a file and a chat", true); return; }
      var reader = new FileReader();
      reader.onload = function () {
        var url = String(reader.result), kind = mediaRoute(file);
        var body = {chatId: to, base64: url.slice(url.indexOf(",") + 1)};
        if (file.type) { body.mimetype = file.type; }
        if (kind === "document") { body.filename = file.name; }
        if (caption.value && kind !== "audio") { body.caption = caption.value; }
        act(api("POST", "/sessions/" + sid + "/messages/send-" + kind, body), function () {
          picker.value = ""; caption.value = "";
          if (!chat) { var id = to.indexOf("@") < 0 ? to + "@c.us" : to; addChat({id: id}); openChat(id); }
        });
      };
      reader.onerror = function () { flash("cannot read " + file.name, true); };
      reader.readAsDataURL(file);
    }}, h("input", {id: "send-file", type: "file", accept: "image/*,video/*,audio/*,application/pdf,*/*"}),
      h("input", {id: "send-caption", placeholder: "caption (optional)", maxlength: 1024}),
      h("button", {type: "submit", "data-action": "Send file"}, "Send file")) : null;
    function mediaLabel(m) {
      if (!m.media) { return null; }
      var size = m.media.size ? " " + Math.max(1, Math.round(m.media.size / 1024)) + " kB" : "";
      return "[" + m.type + (m.media.filename ? ": " + m.media.filename : "") + size + "] ";
    }
    function bubble(m) {
      return h("div", {"class": m.fromMe ? "msg out" : "msg in", "data-id": m.id || m.messageId},
        mediaLabel(m), m.body || m.caption || (m.media ? "" : "[" + m.type + "]"));
    }
    function openChat(chatId) {
      chat = chatId; thread.textContent = "";
      list.querySelectorAll("li").forEach(function (li) { li.className = li.getAttribute("data-chat") === chatId ? "active" : ""; });
      api("GET", "/sessions/" + sid + "/messages?limit=50&chatId=" + encodeURIComponent(chatId)).then(function (r) {
        var live = Array.prototype.slice.call(thread.children);  // arrived while loading
        thread.textContent = "";
        r.messages.slice().reverse().forEach(function (m) { add(thread, bubble(m)); });
        live.forEach(function (el) {
          if (!thread.querySelector('[data-id="' + CSS.escape(el.getAttribute("data-id") || "") + '"]')) { add(thread, el); }
        });
        thread.scrollTop = thread.scrollHeight;
      });
    }
    // The server caches chat lists (CACHE_TTL): chats that live events reveal are added here.
    function addChat(c) {
      if (list.querySelector('[data-chat="' + CSS.escape(c.id) + '"]')) { return; }
      add(list, h("li", {"data-chat": c.id, "class": c.id === chat ? "active" : null, onclick: function () { openChat(c.id); }},
        c.name || c.id, c.unreadCount ? " (" + c.unreadCount + ")" : ""));
    }
    function loadChats() {
      list.textContent = "";
      api("GET", "/sessions/" + sid + "/chats").then(function (chats) { chats.forEach(addChat); },
        function (e) { add(list, h("li", null, e.message)); });
    }
    onEvent(function (p) {
      if (p.sessionId !== sid || (p.event !== "message.received" && p.event !== "message.sent")) { return; }
      var m = p.data, chatId = m.chatId || m.from;
      if (p.event === "message.sent") { m = {fromMe: true, body: m.body, type: m.type, id: m.id, media: m.media}; }
      if (chatId === chat && !thread.querySelector('[data-id="' + CSS.escape(m.id || "") + '"]')) {
        add(thread, bubble(m)); thread.scrollTop = thread.scrollHeight;
      }
      addChat({id: chatId});
    });
    add(main, [sessionPicker(function (v) { sid = v; chat = null; thread.textContent = ""; loadChats(); }, true),
      h("div", {"class": "chats"}, h("div", {"class": "panel"}, list), h("div", {"class": "panel"}, thread, send, sendFile))]);
  };

  pages.webhooks = function (main) {
    var sid = null, body = h("tbody"), detail = h("div", {"class": "panel", id: "webhook-detail"});
    var picker = h("div", {"class": "row"}, EVENTS.concat(["*"]).map(function (ev) {
      return h("label", null, h("input", {type: "checkbox", value: ev, "class": "event-pick", checked: ev === "message.received"}), ev);
    }));
    var form = h("form", {id: "create-webhook", onsubmit: function (e) {
      e.preventDefault();
      var events = Array.prototype.map.call(document.querySelectorAll(".event-pick:checked"), function (c) { return c.value; });
      var req = {url: document.getElementById("hook-url").value, events: events};
      var secret = document.getElementById("hook-secret").value;
      if (secret) { req.secret = secret; }
      if (document.getElementById("hook-inline-media").checked) { req.inlineMedia = true; }
      act(api("POST", "/sessions/" + sid + "/webhooks", req), load);
    }}, h("div", {"class": "row"}, h("input", {id: "hook-url", placeholder: "https://receiver.example/hook", required: true, size: 50}),
      h("input", {id: "hook-secret", placeholder: "secret (optional, 16+ chars)", type: "password"}),
      h("label", null, h("input", {id: "hook-inline-media", type: "checkbox"}), "inline media up to 1 MiB"),
      h("button", {type: "submit"}, "Add webhook")), picker);
    function deliveries(w) {
      api("GET", "/sessions/" + sid + "/webhooks/" + w.id + "/deliveries").then(function (rows) {
        detail.textContent = "";
        add(detail, [h("h3", null, "Recent deliveries of ", w.url), table(["Event", "Status", "Attempts", "HTTP", "Error", "At"],
          rows.map(function (d) {
            return h("tr", null, h("td", null, d.event), h("td", null, d.status), h("td", null, d.attempts),
              h("td", null, d.lastStatusCode || ""), h("td", null, d.lastError || ""), h("td", null, d.occurredAt));
          }))]);
      });
    }
    function load() {
      api("GET", "/sessions/" + sid + "/webhooks").then(function (hooks) {
        body.textContent = "";
        hooks.forEach(function (w) {
          var result = h("span", {"class": "test-result"});
          add(body, h("tr", {"data-webhook": w.url}, h("td", null, w.url), h("td", null, w.events.join(", ")),
            h("td", null, w.active ? "active" : "paused"), h("td", {"class": "row"},
              btn("operator", "Test", function () {
                act(api("POST", "/sessions/" + sid + "/webhooks/" + w.id + "/test"), function (r) {
                  result.textContent = r.success ? "delivered (HTTP " + r.statusCode + ")" : "failed: " + (r.error || r.statusCode);
                  deliveries(w);
                });
              }),
              btn("operator", w.active ? "Pause" : "Resume", function () { act(api("PUT", "/sessions/" + sid + "/webhooks/" + w.id, {active: !w.active}), load); }),
              btn("operator", "Deliveries", function () { deliveries(w); }),
              btn("operator", "Delete", function () { act(api("DELETE", "/sessions/" + sid + "/webhooks/" + w.id), load); }, "danger"), result)));
        });
      });
    }
    add(main, [sessionPicker(function (v) { sid = v; load(); }), form,
      table(["URL", "Events", "State", "Actions"], body), detail]);
    if (can("admin")) {
      var dead = h("tbody");
      var loadDead = function () {
        api("GET", "/webhooks/delivery-failures").then(function (rows) {
          dead.textContent = "";
          rows.forEach(function (d) {
            add(dead, h("tr", null, h("td", null, d.event), h("td", null, d.lastError || ""), h("td", null, d.attempts),
              h("td", null, btn("admin", "Redrive", function () { act(api("POST", "/webhooks/delivery-failures/" + d.id + "/redrive"), loadDead); }))));
          });
        });
      };
      add(main, h("div", {"class": "panel"}, h("h3", null, "Dead letters"), table(["Event", "Error", "Attempts", ""], dead)));
      loadDead();
    }
  };

  pages.keys = function (main) {
    var body = h("tbody"), once = h("div", {id: "key-once"});
    function showOnce(r) {
      once.textContent = "";
      add(once, h("div", {"class": "once"}, h("p", null, "Copy this key now: it is not shown again."), h("code", {id: "new-key"}, r.apiKey)));
      load();
    }
    var form = h("form", {"class": "row", id: "create-key", onsubmit: function (e) {
      e.preventDefault();
      var req = {name: document.getElementById("key-name").value, role: document.getElementById("key-role").value};
      var scope = document.getElementById("key-sessions").value.trim();
      if (scope) { req.allowedSessions = scope.split(/\s*,\s*/); }
      act(api("POST", "/auth/api-keys", req), showOnce);
    }}, h("input", {id: "key-name", placeholder: "name", required: true}),
      sel("key-role", [["viewer", "viewer"], ["operator", "operator"], ["admin", "admin"]], "operator"),
      h("input", {id: "key-sessions", placeholder: "sessions (comma-separated; blank = all)"}), h("button", {type: "submit"}, "Create key"));
    function load() {
      api("GET", "/auth/api-keys").then(function (keys) {
        body.textContent = "";
        keys.forEach(function (k) {
          add(body, h("tr", {"data-key": k.name}, h("td", null, k.name), h("td", null, k.keyPrefix + "…"), h("td", null, k.role),
            h("td", null, (k.allowedSessions || ["all"]).join(", ")), h("td", null, k.isActive ? "active" : "revoked"),
            h("td", null, k.lastUsedAt || ""), h("td", {"class": "row"},
              btn("admin", "Rotate", function () { act(api("POST", "/auth/api-keys/" + k.id + "/rotate"), showOnce); }),
              k.isActive ? btn("admin", "Revoke", function () { act(api("POST", "/auth/api-keys/" + k.id + "/revoke"), load); }, "danger") : null)));
        });
      });
    }
    add(main, [form, once, table(["Name", "Prefix", "Role", "Sessions", "State", "Last used", ""], body)]);
    load();
  };

  pages.infra = function (main) {
    api("GET", "/infra/status").then(function (s) {
      var checks = ["database", "broker", "storage"].map(function (c) { return h("div", {"class": "card"}, c, h("b", null, s[c].status)); });
      var backups = h("tbody");
      var loadBackups = function () {
        api("GET", "/infra/backups").then(function (rows) {
          backups.textContent = "";
          rows.forEach(function (b) {
            add(backups, h("tr", null, h("td", null, b.id), h("td", null, b.status), h("td", null, b.trigger),
              h("td", null, b.sizeBytes === null ? "" : b.sizeBytes), h("td", null, b.error || "")));
          });
        }, function (e) { add(backups, h("tr", null, h("td", null, e.message))); });
      };
      add(main, [h("div", {"class": "cards"}, checks, h("div", {"class": "card"}, "/events clients", h("b", null, s.events.clients + " / " + s.events.maxClients))),
        h("div", {"class": "panel"}, h("h3", null, "Hosts"), hostTable(s.hosts), h("h3", null, "Leases"),
          table(["Session", "Status", "Holder", "Token", "Expires"], s.leases.map(function (l) {
            return h("tr", null, h("td", null, l.name), h("td", null, l.status), h("td", null, l.holder), h("td", null, l.token), h("td", null, l.expiresAt));
          })), h("h3", null, "Queues"), queueTable(s.queues)),
        h("div", {"class": "panel"}, h("h3", null, "Backups"), h("div", {"class": "row"},
          btn("admin", "Back up now", function () { act(api("POST", "/infra/backups"), function (r) { flash("Backup queued (task " + r.id + ")"); setTimeout(loadBackups, 3000); }); })),
          table(["Id", "Status", "Trigger", "Bytes", "Error"], backups)),
        h("div", {"class": "panel"}, h("h3", null, "Tools"), h("a", {href: s.links.flower, target: "_blank", rel: "noopener"}, "Flower"), " ",
          s.links.grafana ? h("a", {href: s.links.grafana, target: "_blank", rel: "noopener"}, "Grafana") : "Grafana: set GRAFANA_URL")]);
      loadBackups();
    });
  };

  function route() {
    var name = (location.hash || "#overview").slice(1);
    if (!pages[name] || (name === "webhooks" && !can("operator")) || ((name === "keys" || name === "infra") && !can("admin"))) { name = "overview"; }
    document.querySelectorAll("nav a[data-page]").forEach(function (a) { a.className = a.getAttribute("data-page") === name ? "active" : ""; });
    state.listeners = []; flash("");
    var main = document.getElementById("main"); main.textContent = ""; main.setAttribute("data-page", name);
    pages[name](main);
  }

  window.addEventListener("hashchange", function () { if (state.key) { route(); } });
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var err = document.getElementById("login-error"); err.textContent = "";
    login(document.getElementById("login-key").value.trim()).then(startApp, function (x) { err.textContent = x.message; state.key = null; });
  });
  if (state.key && state.role) { startApp(); }
}());
