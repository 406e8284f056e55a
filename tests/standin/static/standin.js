/*
 * The stand-in's WhatsApp Web: a `window.WPP` with the calls and events OpenWA's bridge uses.
 *
 * It runs as the page's first script, after whatever the engine injected on the new document
 * (the real @wppconnect/wa-js bundle, then the bridge). It records what it found of the real
 * wa-js, then takes `window.WPP` over. Its device id and its link are kept in IndexedDB, in
 * the browser profile, as WhatsApp Web keeps its keys; the "servers" are /wa/* of the
 * stand-in server, which pushes to the page over server-sent events.
 */
(function () {
  'use strict';
  var real = window.WPP;
  var saw = {
    present: !!real && typeof real === 'object',
    version: real ? real.version || null : null,
    license: real ? real.license || null : null,
    hasConn: !!(real && real.conn && typeof real.conn.getAuthCode === 'function'),
    isInjected: real ? !!real.isInjected : null,
    gaDisabled: !!(real && real.config && real.config.disableGoogleAnalytics),
    bridgeBefore: typeof window.__openwa === 'object',
    at: Date.now()
  };
  window.__standinSaw = saw;

  // -- WhatsApp-ish values -------------------------------------------------------------
  function Wid(serialized) {
    var parts = String(serialized).split('@');
    return {
      _serialized: String(serialized), user: parts[0], server: parts[1] || 'c.us',
      toString: function () { return String(serialized); }
    };
  }

  function MsgKey(serialized) {
    var parts = String(serialized).split('_');
    return {
      _serialized: String(serialized), fromMe: parts[0] === 'true', remote: Wid(parts[1]),
      id: parts.slice(2).join('_'), toString: function () { return String(serialized); }
    };
  }

  function Msg(m) {
    return {
      id: MsgKey(m.id), from: Wid(m.from), to: Wid(m.to), body: m.body, type: m.type || 'chat',
      t: m.t, ack: m.ack || 0, isNewMsg: true, quotedStanzaID: m.quoted ? String(m.quoted).split('_').pop() : undefined,
      _quoted: m.quoted || null,
      // -- media (issue 12)
      caption: m.caption || undefined, mimetype: m.mimetype || undefined, filename: m.filename || undefined,
      isPtt: m.type === 'ptt' || undefined
    };
  }

  // -- events ----------------------------------------------------------------------------
  var listeners = {};
  function on(name, fn) {
    (listeners[name] = listeners[name] || []).push(fn);
  }
  function off(name, fn) {
    listeners[name] = (listeners[name] || []).filter(function (f) { return f !== fn; });
  }
  function emit(name, value) {
    (listeners[name] || []).slice().forEach(function (fn) {
      try { fn(value); } catch (error) { console.error('listener of ' + name, error); }
    });
  }

  // -- the "servers" ------------------------------------------------------------------------
  function post(path, body) {
    return fetch(path, {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)
    }).then(function (reply) {
      return reply.json().then(function (value) {
        if (!reply.ok) {
          throw new Error(value.error || ('HTTP ' + reply.status));
        }
        return value;
      });
    });
  }

  // -- the profile: IndexedDB, like WhatsApp Web -------------------------------------------
  function store() {
    return new Promise(function (resolve, reject) {
      var open = indexedDB.open('standin', 1);
      open.onupgradeneeded = function () { open.result.createObjectStore('kv'); };
      open.onsuccess = function () { resolve(open.result); };
      open.onerror = function () { reject(open.error); };
    });
  }
  function kvGet(db, key) {
    return new Promise(function (resolve, reject) {
      var request = db.transaction('kv').objectStore('kv').get(key);
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }
  function kvPut(db, key, value) {
    return new Promise(function (resolve, reject) {
      var tx = db.transaction('kv', 'readwrite');
      if (value === undefined) {
        tx.objectStore('kv').delete(key);
      } else {
        tx.objectStore('kv').put(value, key);
      }
      tx.oncomplete = function () { resolve(); };
      tx.onerror = function () { reject(tx.error); };
    });
  }

  // -- connection state ----------------------------------------------------------------------
  var db = null;
  var device = null;
  var config = {qrRotateMs: 20000, qrMaxRotations: 6};
  var state = {authenticated: false, mainReady: false, code: null, phone: null, pushName: null};
  var rotation = {timer: null, count: 0};
  var messages = {};
  var chats = {};

  function show(text) {
    var el = document.getElementById('status');
    if (el) { el.textContent = text; }
    var qr = document.getElementById('qr');
    if (qr) { qr.textContent = state.code ? state.code.fullCode : ''; }
  }

  function stopRotation() {
    if (rotation.timer) { clearTimeout(rotation.timer); }
    rotation.timer = null;
  }

  function nextCode() {
    stopRotation();
    return post('/wa/qr', {device: device}).then(function (code) {
      if (state.authenticated) { return null; }
      state.code = {type: 'multidevice', ref: code.ref, fullCode: code.fullCode};
      show('scan the QR code');
      emit('conn.auth_code_change', state.code);
      rotation.timer = setTimeout(function () {
        rotation.count += 1;
        if (rotation.count >= config.qrMaxRotations) {
          state.code = null;
          show('QR code expired: click to reload');
          post('/wa/idle', {device: device});
          emit('conn.auth_code_change', null);
          emit('conn.qrcode_idle');
        } else {
          nextCode();
        }
      }, config.qrRotateMs);
      return state.code;
    });
  }

  function linked(phone, pushName, fresh) {
    stopRotation();
    state.code = null;
    state.phone = phone;
    state.pushName = pushName;
    state.authenticated = true;
    show('connecting');
    var saved = fresh ? kvPut(db, 'link', {phone: phone, pushName: pushName}) : Promise.resolve();
    return saved.then(function () {
      if (fresh) { emit('conn.authenticated'); }
      setTimeout(function () {
        state.mainReady = true;
        show('ready as ' + phone);
        emit('conn.main_ready');
      }, 50);
    });
  }

  function loggedOut() {
    stopRotation();
    var was = state.authenticated;
    state.authenticated = state.mainReady = false;
    state.phone = state.pushName = null;
    state.code = null;
    messages = {};
    chats = {};
    return kvPut(db, 'link', undefined).then(function () {
      if (was) { emit('conn.logout'); }
      rotation.count = 0;
      return nextCode();
    });
  }

  function noteChat(chat, t, unread) {
    var entry = chats[chat] || (chats[chat] = {id: Wid(chat), name: chat.split('@')[0], unreadCount: 0, t: 0});
    entry.t = Math.max(entry.t, t);
    entry.unreadCount = unread ? entry.unreadCount + 1 : 0;
  }

  function onServerEvent(event) {
    if (event.type === 'linked') {
      linked(event.phone, event.pushName, true);
    } else if (event.type === 'message') {
      var msg = Msg(event.message);
      messages[event.message.id] = msg;
      noteChat(event.message.chat, event.message.t, true);
      emit('chat.new_message', msg);
    } else if (event.type === 'ack') {
      var known = messages[event.id];
      if (known) { known.ack = event.ack; }
      emit('chat.msg_ack_change', {ack: event.ack, chat: Wid(event.chat), ids: [MsgKey(event.id)]});
    } else if (event.type === 'action_event') {
      onActionEvent(event);  // message actions (issue 13.1)
    } else if (event.type === 'logout') {
      loggedOut();
    } else if (event.type === 'reload') {
      location.reload();
    } else if (event.type === 'wpp') {  // chats, contacts, groups (issue 13): a WPP event as is
      emit(event.name, event.value);
    } else if (event.type === 'hang') {
      setTimeout(function () { for (;;) { /* a page that never answers again */ } }, 0);
    }
  }

  // A linked device that opens syncs its messages (with their ack levels) from the servers.
  function syncHistory() {
    return fetch('/wa/history?device=' + encodeURIComponent(device)).then(function (reply) {
      return reply.ok ? reply.json() : [];
    }).then(function (list) {
      list.forEach(function (m) {
        messages[m.id] = Msg(m);
        noteChat(m.chat, m.t, false);
      });
    }, function () {});
  }

  function requireReady() {
    if (!state.mainReady) {
      throw new Error('WhatsApp is not connected');
    }
  }

  // -- window.WPP ---------------------------------------------------------------------------
  var WPP = {
    standin: true,
    version: 'stand-in',
    isInjected: true,
    isReady: false,
    isFullReady: false,
    config: real && real.config ? real.config : {},
    on: on,
    off: off,
    removeListener: off,
    conn: {
      getAuthCode: function () { return Promise.resolve(state.code); },
      refreshQR: function () { rotation.count = 0; return nextCode(); },
      isAuthenticated: function () { return state.authenticated; },
      isMainReady: function () { return state.mainReady; },
      isMainLoaded: function () { return state.mainReady; },
      isIdle: function () { return !state.authenticated && !state.code; },
      getMyUserId: function () { return state.phone ? Wid(state.phone + '@c.us') : undefined; },
      genLinkDeviceCodeForPhoneNumber: function (phone) {
        if (state.authenticated) { return Promise.reject(new Error('already linked')); }
        return post('/wa/pairing', {device: device, phone: String(phone)}).then(function (r) {
          return r.code;
        });
      },
      logout: function () {
        return post('/wa/logout', {device: device}).then(function () { return loggedOut(); })
          .then(function () { return true; });
      }
    },
    profile: {
      getMyProfileName: function () { return state.pushName; }
    },
    chat: {
      sendTextMessage: function (chat, text, options) {
        requireReady();
        options = options || {};
        var id = options.messageId ? String(options.messageId._serialized ? options.messageId.id : options.messageId) : null;
        var quoted = options.quotedMsg ? String(options.quotedMsg._serialized || options.quotedMsg) : null;
        return post('/wa/send', {
          device: device, to: String(chat), body: String(text), id: id, quoted: quoted,
          mentions: options.mentionedList || [],
          linkPreview: !!options.linkPreview  // message actions (issue 13.1)
        }).then(function (m) {
          var msg = Msg(m);
          msg.ack = 1;
          messages[m.id] = msg;
          noteChat(m.chat, m.t, false);
          emit('chat.new_message', msg);
          return {id: msg.id, ack: 1, from: m.from, to: m.to, t: m.t, sendMsgResult: {messageSendResult: 'OK'}};
        });
      },
      // -- media (issue 12): WPP.chat.sendFileMessage / downloadMedia, as wa-js offers them
      sendFileMessage: function (chat, content, options) {
        requireReady();
        options = options || {};
        var text = String(content);
        var comma = text.indexOf(',');
        var mimetype = options.mimetype || (text.indexOf('data:') === 0 ? text.slice(5, text.indexOf(';')) : null);
        var type = options.type === 'audio' && options.isPtt ? 'ptt' : (options.type || 'document');
        var id = options.messageId ? String(options.messageId._serialized ? options.messageId.id : options.messageId) : null;
        var quoted = options.quotedMsg ? String(options.quotedMsg._serialized || options.quotedMsg) : null;
        return post('/wa/send', {
          device: device, to: String(chat), body: null, id: id, quoted: quoted, type: type,
          mimetype: mimetype, filename: options.filename || null, caption: options.caption || null,
          data: comma >= 0 ? text.slice(comma + 1) : text
        }).then(function (m) {
          var msg = Msg(m);
          msg.ack = 1;
          messages[m.id] = msg;
          noteChat(m.chat, m.t, false);
          emit('chat.new_message', msg);
          return {id: msg.id, ack: 1, from: m.from, to: m.to, t: m.t, sendMsgResult: {messageSendResult: 'OK'}};
        });
      },
      downloadMedia: function (id) {
        var key = String(id._serialized || id);
        return fetch('/wa/media?device=' + encodeURIComponent(device) + '&id=' + encodeURIComponent(key))
          .then(function (reply) {
            if (!reply.ok) { throw new Error('media not found'); }
            return reply.blob();
          });
      },
      getMessageById: function (id) {
        var key = String(id._serialized || id);
        if (messages[key]) { return Promise.resolve(messages[key]); }
        return fetch('/wa/message?device=' + encodeURIComponent(device) + '&id=' + encodeURIComponent(key))
          .then(function (reply) {
            if (!reply.ok) { throw new Error('Msg not found'); }
            return reply.json().then(Msg);
          });
      },
      getMessages: function (chat, options) {
        requireReady();
        var count = options && options.count > 0 ? options.count : 20;
        var list = Object.keys(messages).map(function (k) { return messages[k]; })
          .filter(function (m) { return m.id.remote._serialized === String(chat._serialized || chat); })
          .sort(function (a, b) { return a.t - b.t; });
        return Promise.resolve(list.slice(-count));
      },
      getQuotedMsgKey: function (msg) {
        if (!msg._quoted) { throw new Error('no quoted message'); }
        return MsgKey(msg._quoted);
      },
      list: function () {
        requireReady();
        return Promise.resolve(Object.keys(chats).map(function (k) { return chats[k]; })
          .sort(function (a, b) { return b.t - a.t; }));
      }
    },
    contact: {
      queryExists: function (id) {
        requireReady();
        var user = String(id._serialized || id).split('@')[0];
        return Promise.resolve(/0000$/.test(user) ? null : {wid: Wid(user + '@c.us'), biz: false});
      },
      list: function () {
        requireReady();
        return Promise.resolve(Object.keys(chats).map(function (k) {
          return {id: chats[k].id, name: chats[k].name, pushname: chats[k].name, isBusiness: false};
        }));
      }
    },
    group: {
      getAllGroups: function () { requireReady(); return Promise.resolve([]); }
    }
  };
  // -- message actions (issue 13.1) ----------------------------------------------------------
  // Every call is recorded by the servers (/wa/action) with its arguments; sends come back as
  // messages, with what their kind carries (location, vCard, poll) as extra fields.
  function action(call, args) {
    requireReady();
    return post('/wa/action', {device: device, call: call, args: args});
  }
  function plain(value) {
    return value && value._serialized ? String(value._serialized) : value;
  }
  function sentMessage(m) {
    var msg = Object.assign(Msg(m), m.extra || {});
    msg.ack = 1;
    messages[m.id] = msg;
    noteChat(m.chat, m.t, false);
    emit('chat.new_message', msg);
    return {id: msg.id, ack: 1, from: m.from, to: m.to, t: m.t, sendMsgResult: {messageSendResult: 'OK'}};
  }
  function withoutIds(options) {
    var copy = Object.assign({}, options || {});
    copy.messageId = copy.messageId ? String(copy.messageId._serialized ? copy.messageId.id : copy.messageId) : null;
    return copy;
  }
  Object.assign(WPP.chat, {
    sendLocationMessage: function (chat, options) {
      return action('sendLocationMessage', [String(chat), withoutIds(options)]).then(sentMessage);
    },
    sendVCardContactMessage: function (chat, contacts, options) {
      return action('sendVCardContactMessage', [String(chat), {id: plain(contacts.id), name: contacts.name},
                                                withoutIds(options)]).then(sentMessage);
    },
    sendCreatePollMessage: function (chat, name, choices, options) {
      return action('sendCreatePollMessage', [String(chat), name, choices, withoutIds(options)])
        .then(sentMessage);
    },
    forwardMessages: function (chat, ids) {
      return action('forwardMessages', [String(chat), ids.map(plain)]).then(function (m) {
        sentMessage(m);
        return [true];
      });
    },
    sendReactionToMessage: function (msgId, reaction) {
      return action('sendReactionToMessage', [plain(msgId), reaction]).then(function () {
        return {sendMsgResult: 'OK'};
      });
    },
    deleteMessage: function (chat, ids, deleteMedia, revoke) {
      return action('deleteMessage', [String(chat), ids, !!deleteMedia, !!revoke]).then(function () {
        return {id: ids, sendMsgResult: 'OK', isRevoked: !!revoke, isDeleted: !revoke, isSentByMe: true};
      });
    },
    editMessage: function (msgId, text, options) {
      return action('editMessage', [plain(msgId), text, options || {}]).then(function () {
        var known = messages[plain(msgId)];
        if (known) { known.body = text; }
        return {id: plain(msgId), ack: 1, sendMsgResult: {messageSendResult: 'OK'}};
      });
    },
    starMessage: function (msgId, star) {
      return action('starMessage', [plain(msgId), star]).then(function () {
        return {id: plain(msgId), star: star};
      });
    },
    pinMsg: function (msgId, pin, duration) {
      return action('pinMsg', arguments.length > 2 ? [plain(msgId), pin, duration] : [plain(msgId), pin])
        .then(function () { return {pinned: pin !== false}; });
    }
  });
  WPP.whatsapp = {PinExpiryDurationOption: {FiveSeconds: 'FiveSeconds', FifteenSeconds: 'FifteenSeconds',
    OneMinute: 'OneMinute', OneDay: 'OneDay', SevenDays: 'SevenDays', ThirtyDays: 'ThirtyDays'}};

  // What the phone or a peer did, as WhatsApp Web reports it.
  function onActionEvent(event) {
    var v = event.value;
    if (event.name === 'chat.new_reaction') {
      emit(event.name, {id: MsgKey(v.id), msgId: MsgKey(v.messageId), reactionText: v.emoji,
                        read: false, sender: Wid(v.from), orphan: 0, timestamp: v.t});
    } else if (event.name === 'chat.msg_revoke') {
      emit(event.name, {from: Wid(v.chat), to: Wid(v.chat), id: MsgKey(v.id),
                        refId: MsgKey(v.messageId), type: 'revoke'});
    } else if (event.name === 'chat.msg_edited') {
      var known = messages[v.messageId];
      if (known) { known.body = v.body; }
      emit(event.name, {chat: Wid(v.chat), id: v.messageId,
                        msg: {id: MsgKey(v.messageId), body: v.body, t: v.t,
                              latestEditSenderTimestampMs: v.t * 1000}});
    } else if (event.name === 'chat.poll_response') {
      emit(event.name, {msgId: MsgKey(v.messageId), chatId: Wid(v.chat),
                        selectedOptions: v.selectedOptions, timestamp: v.t, sender: Wid(v.from)});
    }
  }

  window.WPP = WPP;

  // -- chats, contacts, groups (issue 13.2/3) ------------------------------------------------
  // Every call is recorded by the stand-in server (/wa/call: name and arguments, so a test
  // proves what the bridge asked of wa-js) and answered by it; chat flags also change the
  // page's own chat list, as WhatsApp Web's ChatModel does.
  function plain(value) {
    if (value && typeof value === 'object' && value._serialized) { return String(value._serialized); }
    if (Array.isArray(value)) { return value.map(plain); }
    return value === undefined ? null : value;
  }
  function recorded(name, after) {
    return function () {
      requireReady();
      var args = Array.prototype.slice.call(arguments).map(plain);
      return post('/wa/call', {device: device, name: name, args: args}).then(function (reply) {
        if (after) { after.apply(null, args); }
        return reply.value;
      });
    };
  }
  function flag(field, value) {
    return function (chat, on) {
      var entry = chats[String(chat)];
      if (entry) { entry[field] = value === undefined ? on !== false : value; }
    };
  }
  function asWids(list, fields) {
    return (list || []).map(function (item) {
      var copy = Object.assign({}, item);
      fields.forEach(function (f) { if (copy[f]) { copy[f] = Wid(copy[f]); } });
      return copy;
    });
  }
  [['chat', 'archive', flag('archive')], ['chat', 'unarchive', flag('archive', false)],
   ['chat', 'pin', flag('pin')], ['chat', 'unpin', flag('pin', false)],
   ['chat', 'markIsRead', flag('unreadCount', 0)], ['chat', 'markIsUnread', flag('unreadCount', -1)],
   ['chat', 'unmute', flag('muteExpiration', 0)], ['chat', 'delete', function (chat) { delete chats[chat]; }],
   ['chat', 'markIsComposing'], ['chat', 'markIsRecording'], ['chat', 'markIsPaused'],
   ['conn', 'markAvailable'], ['contact', 'getStatus'], ['contact', 'getProfilePictureUrl'],
   ['blocklist', 'blockContact'], ['blocklist', 'unblockContact'], ['blocklist', 'isBlocked'],
   ['group', 'create'], ['group', 'addParticipants'], ['group', 'removeParticipants'],
   ['group', 'promoteParticipants'], ['group', 'demoteParticipants'], ['group', 'setSubject'],
   ['group', 'setDescription'], ['group', 'setProperty'], ['group', 'getInviteCode'],
   ['group', 'revokeInviteCode'], ['group', 'join'], ['group', 'leave']
  ].forEach(function (row) {
    WPP[row[0]] = WPP[row[0]] || {};
    WPP[row[0]][row[1]] = recorded(row[0] + '.' + row[1], row[2]);
  });
  WPP.chat.mute = recorded('chat.mute', function (chat, time) {
    var entry = chats[String(chat)];
    if (entry) {
      entry.muteExpiration = time.expiration !== undefined ? time.expiration
        : Math.floor(Date.now() / 1000) + time.duration;
    }
  });
  var getContact = recorded('contact.get');
  WPP.contact.get = function (id) {
    return getContact(id).then(function (c) { return c ? asWids([c], ['id'])[0] : undefined; });
  };
  var getChat = recorded('chat.get');
  WPP.chat.get = function (id) {
    return getChat(id).then(function (c) { return c ? asWids([c], ['id'])[0] : undefined; });
  };
  var getParticipants = recorded('group.getParticipants');
  WPP.group.getParticipants = function (id) {
    return getParticipants(id).then(function (list) { return asWids(list, ['id']); });
  };
  var getAllGroups = recorded('group.getAllGroups');
  WPP.group.getAllGroups = function () {
    return getAllGroups().then(function (list) { return asWids(list, ['id']); });
  };

  // -- start up: identity from the profile, hello to the servers, then the event stream --------
  store().then(function (opened) {
    db = opened;
    return Promise.all([kvGet(db, 'device'), kvGet(db, 'link')]);
  }).then(function (values) {
    device = values[0];
    var link = values[1] || null;
    var firstRun = !device;
    if (firstRun) {
      device = 'dev-' + Math.random().toString(36).slice(2) + Date.now().toString(36);
    }
    return (firstRun ? kvPut(db, 'device', device) : Promise.resolve()).then(function () {
      return post('/wa/hello', {device: device, saw: saw, phone: link ? link.phone : null});
    }).then(function (reply) {
      config = reply.config || config;
      if (reply.linked) {
        state.authenticated = true;
        state.phone = reply.phone;
        state.pushName = reply.pushName;
      }
      var source = new EventSource('/wa/events?device=' + encodeURIComponent(device));
      source.onmessage = function (message) { onServerEvent(JSON.parse(message.data)); };
      WPP.isReady = WPP.isFullReady = true;
      // Give wa-js consumers a moment to subscribe, as WhatsApp Web's own start-up would.
      setTimeout(function () {
        if (reply.linked) {
          syncHistory().then(function () { linked(reply.phone, reply.pushName, false); });
        } else if (reply.revoked || link) {
          kvPut(db, 'link', undefined).then(function () {
            emit('conn.logout');
            return nextCode();
          });
        } else {
          nextCode();
        }
      }, 50);
    });
  }).catch(function (error) {
    show('failed: ' + error);
    console.error('stand-in start-up failed', error);
  });
})();
