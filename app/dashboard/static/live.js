// The dashboard's /events connection: the few frames of Engine.IO 4 / Socket.IO 5 it needs,
// over the browser's own WebSocket (no client library, nothing fetched from elsewhere).
"use strict";
function LiveEvents(apiKey, onFrame, onState) {
  var ws = null, closed = false, retry = 1000, subscriptions = [], n = 0;
  function send(frame) {
    if (ws && ws.readyState === 1 && ws.connected) {
      ws.send("42/events," + JSON.stringify(["message", frame]));
    }
  }
  function open() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + "/socket.io/?EIO=4&transport=websocket");
    ws.onmessage = function (msg) {
      var data = String(msg.data), kind = data.charAt(0);
      if (kind === "0") { ws.send("40/events," + JSON.stringify({apiKey: apiKey})); return; }
      if (kind === "2") { ws.send("3"); return; }  // engine ping
      if (kind !== "4") { return; }
      var m = /^(\d)(\/[^,]*,)?\d*([\s\S]*)$/.exec(data.slice(1));
      if (!m || m[2] !== "/events,") { return; }
      if (m[1] === "0") {  // connected to the namespace
        ws.connected = true; retry = 1000; onState(true);
        subscriptions.forEach(function (s) { send(s); });
      } else if (m[1] === "4") {  // refused (bad key, or the process is full)
        onState(false, "refused"); closed = true; ws.close();
      } else if (m[1] === "2") {
        var args = JSON.parse(m[3]);
        if (args[0] === "message") { onFrame(args[1]); }
      }
    };
    ws.onclose = function () {
      onState(false);
      if (!closed) { setTimeout(open, retry); retry = Math.min(retry * 2, 30000); }
    };
  }
  open();
  return {
    subscribe: function (sessionId, events) {
      var frame = {type: "subscribe", sessionId: sessionId, events: events || ["*"], requestId: "s" + (++n)};
      subscriptions.push(frame); send(frame);
    },
    close: function () { closed = true; if (ws) { ws.close(); } }
  };
}
