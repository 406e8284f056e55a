/*
 * OpenWA bridge: injected after @wppconnect/wa-js on every new document (CDP
 * Page.addScriptToEvaluateOnNewDocument), before WhatsApp Web's own scripts run.
 *
 * It waits until `window.WPP` is ready, subscribes to the WPP events the engine cares about
 * and hands each one to the engine: through the CDP binding `__openwaEmit` when the engine
 * added it (delivered to the host in about a millisecond), else into an in-page buffer that
 * the engine drains with `__openwa.drain()`. It also exposes `__openwa.call(name, args)`, the
 * only entry point the engine uses to act on the page; it always resolves, to
 * `{ok: true, value}` or `{ok: false, code, error}`.
 *
 * `window.WPP` is looked up on every use, never kept: the page may replace it.
 */
(function () {
  'use strict';
  if (window.__openwa) {
    return;
  }
  var BINDING = '__openwaEmit';
  var BUFFER_MAX = 5000;
  var page = Math.random().toString(36).slice(2) + Date.now().toString(36);
  var seq = 0;
  var buffer = [];
  var subscribed = false;

  function wpp() {
    return window.WPP;
  }

  function wid(value) {
    if (value === null || value === undefined) {
      return null;
    }
    if (typeof value === 'string') {
      return value;
    }
    if (value._serialized) {
      return String(value._serialized);
    }
    return typeof value.toString === 'function' ? String(value.toString()) : null;
  }

  function emit(type, data) {
    var event = {page: page, seq: ++seq, type: type, at: Date.now(), data: data || {}};
    var binding = window[BINDING];
    if (typeof binding === 'function') {
      try {
        binding(JSON.stringify(event));
        return;
      } catch (error) {
        // The binding went away with the engine's CDP connection: keep it for a drain.
      }
    }
    buffer.push(event);
    if (buffer.length > BUFFER_MAX) {
      buffer.shift();
    }
  }

  function quotedId(msg) {
    try {
      var W = wpp();
      if (msg.quotedStanzaID && W.chat.getQuotedMsgKey) {
        return wid(W.chat.getQuotedMsgKey(msg));
      }
    } catch (error) {
      // An unknown quoted message is not worth losing the message for.
    }
    return null;
  }

  function message(msg) {
    var key = msg.id || {};
    var chat = wid(key.remote) || (key.fromMe ? wid(msg.to) : wid(msg.from));
    return {
      id: wid(key),
      fromMe: !!key.fromMe,
      chatId: chat,
      from: wid(msg.from),
      to: wid(msg.to),
      author: wid(msg.author),
      type: msg.type || 'chat',
      body: typeof msg.body === 'string' ? msg.body : null,
      caption: msg.caption || null,
      mimetype: msg.mimetype || null,
      filename: msg.filename || null,
      timestamp: msg.t || Math.floor(Date.now() / 1000),
      quotedMessageId: quotedId(msg),
      content: actionContent(msg)  // message actions (issue 13.1)
    };
  }

  // -- message actions (issue 13.1) -----------------------------------------------------------
  // What a location, contact or poll message carries beyond its text.
  function actionContent(msg) {
    if (msg.type === 'location') {
      return {latitude: msg.lat, longitude: msg.lng, description: msg.loc || null,
              address: msg.address || null};
    }
    if (msg.type === 'vcard') {
      return {vcard: msg.body || null};
    }
    if (msg.type === 'poll_creation') {
      return {name: msg.pollName || null,
              options: (msg.pollOptions || []).map(function (o) { return o.name; }),
              multipleAnswers: (msg.pollSelectableOptionsCount || 0) !== 1, votes: {}};
    }
    return null;
  }

  // A vote names option ids; the poll message has their names.
  function optionNames(msgId, selected) {
    return Promise.resolve(wpp().chat.getMessageById(msgId)).then(function (poll) {
      var options = (poll && poll.pollOptions) || [];
      return (selected || []).map(function (id) {
        var found = options.filter(function (o) { return o.localId === id; })[0];
        return found ? found.name : String(id);
      });
    }, function () {
      return (selected || []).map(String);
    });
  }

  function subscribeActions(W) {
    W.on('chat.msg_edited', function (edit) {
      var msg = edit.msg || {};
      emit('edited', {messageId: wid(msg.id) || edit.id, chatId: wid(edit.chat),
                      body: typeof msg.body === 'string' ? msg.body : null,
                      timestamp: msg.latestEditSenderTimestampMs
                        ? Math.floor(msg.latestEditSenderTimestampMs / 1000) : (msg.t || null)});
    });
    W.on('chat.poll_response', function (vote) {
      optionNames(vote.msgId, vote.selectedOptions).then(function (names) {
        emit('poll_vote', {messageId: wid(vote.msgId), chatId: wid(vote.chatId),
                           from: wid(vote.sender), selectedOptions: names,
                           timestamp: vote.timestamp || null});
      });
    });
  }

  function sentInfo(sent) {
    return {id: wid(sent.id), ack: sent.ack, timestamp: sent.t || null};
  }

  function sendOptions(id) {
    return {messageId: id, createChat: true, waitForAck: true};
  }

  var actionCalls = {
    sendLocation: function (chat, id, lat, lng, name, address) {
      var options = sendOptions(id);
      options.lat = lat;
      options.lng = lng;
      if (name) {
        options.name = name;
      }
      if (address) {
        options.address = address;
      }
      return wpp().chat.sendLocationMessage(chat, options).then(sentInfo);
    },
    sendContact: function (chat, id, contact, name) {
      return wpp().chat.sendVCardContactMessage(chat, {id: contact, name: name}, sendOptions(id))
        .then(sentInfo);
    },
    sendPoll: function (chat, id, name, choices, selectable) {
      var options = sendOptions(id);
      options.selectableCount = selectable;
      return wpp().chat.sendCreatePollMessage(chat, name, choices, options).then(sentInfo);
    },
    forward: function (chat, id, msgId) {
      // WhatsApp Web picks the forwarded copy's id: read it back as our newest in the chat.
      var W = wpp();
      return Promise.resolve(W.chat.forwardMessages(chat, [msgId])).then(function () {
        return W.chat.getMessages(chat, {count: 5});
      }).then(function (list) {
        var ours = (list || []).filter(function (m) { return m.id && m.id.fromMe; });
        var last = ours[ours.length - 1];
        return last ? {id: wid(last.id), timestamp: last.t || null} : null;
      });
    },
    react: function (msgId, emoji) {
      return wpp().chat.sendReactionToMessage(msgId, emoji ? emoji : false);
    },
    deleteMessage: function (chat, msgId, forEveryone) {
      return Promise.resolve(wpp().chat.deleteMessage(chat, msgId, false, !!forEveryone))
        .then(function (result) {
          var r = Array.isArray(result) ? result[0] : result;
          if (r && !(forEveryone ? r.isRevoked : (r.isDeleted || r.isRevoked))) {
            throw new Error('WhatsApp Web did not delete ' + msgId);
          }
          return true;
        });
    },
    editMessage: function (msgId, text) {
      return wpp().chat.editMessage(msgId, text, {}).then(function () { return true; });
    },
    star: function (msgId, star) {
      return wpp().chat.starMessage(msgId, !!star);
    },
    pin: function (msgId, pin, option) {
      var W = wpp();
      if (!pin) {
        return W.chat.pinMsg(msgId, false).then(function () { return true; });
      }
      var durations = W.whatsapp && W.whatsapp.PinExpiryDurationOption;
      var duration = durations && durations[option] !== undefined ? durations[option] : option;
      return W.chat.pinMsg(msgId, true, duration).then(function () { return true; });
    }
  };

  function me() {
    var W = wpp();
    var user = wid(W.conn.getMyUserId && W.conn.getMyUserId());
    var name = null;
    try {
      name = W.profile && W.profile.getMyProfileName ? W.profile.getMyProfileName() : null;
    } catch (error) {
      name = null;
    }
    return {phone: user ? user.split('@')[0].split(':')[0] : null, pushName: name || null};
  }

  function showCode() {
    return Promise.resolve(wpp().conn.getAuthCode()).then(function (code) {
      if (code && code.fullCode) {
        emit('qr', {qr: code.fullCode});
      }
    });
  }

  function subscribe(W) {
    subscribed = true;
    W.on('conn.auth_code_change', function (code) {
      if (code && code.fullCode) {
        emit('qr', {qr: code.fullCode});
      }
    });
    W.on('conn.qrcode_idle', function () { emit('qr_idle'); });
    W.on('conn.authenticated', function () { emit('authenticated'); });
    W.on('conn.main_ready', function () { emit('ready', me()); });
    W.on('conn.logout', function () { emit('logout'); });
    W.on('conn.require_auth', function () { emit('require_auth'); });
    W.on('chat.new_message', function (msg) {
      if (msg && msg.isNewMsg !== false) {
        emit('message', message(msg));
      }
    });
    W.on('chat.msg_ack_change', function (change) {
      emit('ack', {ack: change.ack, chatId: wid(change.chat), ids: (change.ids || []).map(wid)});
    });
    W.on('chat.msg_revoke', function (revoke) {
      emit('revoke', {messageId: wid(revoke.refId || revoke.id), chatId: wid(revoke.from)});
    });
    W.on('chat.new_reaction', function (reaction) {
      emit('reaction', {
        messageId: wid(reaction.msgId),
        chatId: wid(reaction.msgId && reaction.msgId.remote),
        from: wid(reaction.sender),
        emoji: reaction.reactionText || ''
      });
    });
    subscribeChats(W);
    subscribeActions(W);  // message actions (issue 13.1)
    emit('hello', {wajs: W.version || null, url: String(location.href)});
    if (W.conn.isMainReady && W.conn.isMainReady()) {
      emit('ready', me());
    } else if (W.conn.isAuthenticated && W.conn.isAuthenticated()) {
      emit('authenticated');
    } else {
      showCode().catch(function () {});
    }
  }

  var waiting = setInterval(function () {
    var W = wpp();
    if (W && W.isReady && typeof W.on === 'function') {
      clearInterval(waiting);
      subscribe(W);
    }
  }, 25);

  function fail(code, error) {
    return {ok: false, code: code, error: String(error && error.message || error)};
  }

  var calls = {
    state: function () {
      var W = wpp();
      var ready = !!(W && W.isReady);
      return {
        subscribed: subscribed,
        wppReady: ready,
        authenticated: ready && !!(W.conn.isAuthenticated && W.conn.isAuthenticated()),
        mainReady: ready && !!(W.conn.isMainReady && W.conn.isMainReady()),
        wajs: W ? W.version || null : null,
        page: page
      };
    },
    drain: function () {
      var events = buffer;
      buffer = [];
      return events;
    },
    sendText: function (chat, text, id, quoted, mentions, linkPreview) {
      var options = {messageId: id, createChat: true, waitForAck: true};
      if (linkPreview) {
        options.linkPreview = true;  // message actions (issue 13.1)
      }
      if (quoted) {
        options.quotedMsg = quoted;
      }
      if (mentions && mentions.length) {
        options.mentionedList = mentions;
      }
      return wpp().chat.sendTextMessage(chat, text, options).then(function (sent) {
        return {id: wid(sent.id), ack: sent.ack, timestamp: sent.t || null};
      });
    },
    // -- media (issue 12): files go in as data: URLs, incoming media comes back as base64
    sendFile: function (chat, dataUrl, kind, filename, caption, ptt, id, quoted) {
      var options = {type: kind, messageId: id, createChat: true, waitForAck: true};
      if (filename) { options.filename = filename; }
      if (caption) { options.caption = caption; }
      if (ptt) { options.isPtt = true; }
      if (quoted) { options.quotedMsg = quoted; }
      return wpp().chat.sendFileMessage(chat, dataUrl, options).then(function (sent) {
        return {id: wid(sent.id), ack: sent.ack, timestamp: sent.t || null};
      });
    },
    downloadMedia: function (serialized) {
      return Promise.resolve(wpp().chat.downloadMedia(serialized)).then(function (blob) {
        return new Promise(function (resolve, reject) {
          var reader = new FileReader();
          reader.onload = function () {
            var url = String(reader.result);
            resolve({mimetype: blob.type || null, base64: url.slice(url.indexOf(',') + 1)});
          };
          reader.onerror = function () { reject(reader.error); };
          reader.readAsDataURL(blob);
        });
      });
    },
    findSent: function (serialized) {
      return Promise.resolve(wpp().chat.getMessageById(serialized)).then(function (msg) {
        return msg ? {id: wid(msg.id), timestamp: msg.t || null} : null;
      }, function () { return null; });
    },
    recentAcks: function (sinceSeconds, perChat) {
      // The acks WhatsApp Web holds now for our messages of the last `sinceSeconds`, in the
      // chats active since then: what a host that died before taking the page's ack events
      // missed. Raw messages may carry their key as an object or serialized.
      var W = wpp();
      var since = Math.floor(Date.now() / 1000) - sinceSeconds;
      return Promise.resolve(W.chat.list()).then(function (chats) {
        var recent = (chats || []).filter(function (c) { return (c.t || 0) >= since; });
        return Promise.all(recent.map(function (c) {
          var chat = wid(c.id);
          return Promise.resolve(W.chat.getMessages(chat, {count: perChat})).then(function (list) {
            return (list || []).filter(function (m) {
              var key = m.id || {};
              var fromMe = typeof key === 'string' ? key.indexOf('true_') === 0 : !!key.fromMe;
              return fromMe && (m.ack || 0) > 0 && (m.t || 0) >= since;
            }).map(function (m) {
              return {id: wid(m.id), chatId: chat, ack: m.ack};
            });
          }, function () { return []; });
        }));
      }).then(function (lists) {
        return [].concat.apply([], lists);
      });
    },
    checkNumber: function (chat) {
      return Promise.resolve(wpp().contact.queryExists(chat)).then(function (found) {
        return found ? {exists: true, id: wid(found.wid)} : {exists: false, id: null};
      });
    },
    contacts: function () {
      return Promise.resolve(wpp().contact.list()).then(function (list) {
        return (list || []).map(function (c) {
          return {id: wid(c.id), name: c.name || c.pushname || null, pushName: c.pushname || null,
                  isBusiness: !!c.isBusiness};
        });
      });
    },
    chats: function () {
      return Promise.resolve(wpp().chat.list()).then(function (list) {
        return (list || []).map(function (c) {
          return {id: wid(c.id), name: c.name || c.formattedTitle || null,
                  unreadCount: c.unreadCount || 0, timestamp: c.t || 0};
        });
      });
    },
    groups: function () {
      return Promise.resolve(wpp().group.getAllGroups()).then(function (list) {
        return (list || []).map(function (g) {
          return {id: wid(g.id), name: g.name || g.formattedTitle || null};
        });
      });
    },
    pairingCode: function (phone) {
      return wpp().conn.genLinkDeviceCodeForPhoneNumber(phone);
    },
    refreshQR: function () {
      return Promise.resolve(wpp().conn.refreshQR()).then(function (code) {
        return code ? code.fullCode : null;
      });
    },
    logout: function () {
      return wpp().conn.logout();
    }
  };

  // -- chats, contacts, groups (issue 13.2/3) ---------------------------------------------
  // Calls through WPP.chat.*, WPP.contact.*, WPP.blocklist.*, WPP.conn.* and WPP.group.*;
  // group, presence and call events through WPP.on.
  var GROUP_INFO = ['subject', 'description', 'announce', 'restrict'];

  function subscribeChats(W) {
    W.on('group.participant_changed', function (change) {
      emit('group', {
        groupId: wid(change.groupId), action: change.action || change.operation || null,
        by: wid(change.author), participants: (change.participants || []).map(wid)
      });
    });
    W.on('chat.presence_change', function (change) {
      emit('presence', {
        chatId: wid(change.id), state: change.state || (change.isOnline ? 'available' : 'unavailable'),
        isGroup: !!change.isGroup,
        participants: (change.participants || []).map(function (p) {
          return {id: wid(p.id), state: p.state || null};
        })
      });
    });
    // Subject, description and settings changes arrive as gp2 notification messages.
    W.on('chat.new_message', function (msg) {
      if (!msg || msg.type !== 'gp2' || GROUP_INFO.indexOf(msg.subtype) < 0) {
        return;
      }
      var key = msg.id || {};
      emit('group', {
        groupId: wid(key.remote) || wid(msg.from), action: msg.subtype, by: wid(msg.author),
        participants: [], body: typeof msg.body === 'string' ? msg.body : null
      });
    });
    W.on('call.incoming_call', function (call) {
      emit('call', {
        callId: call.id ? String(call.id) : null, from: wid(call.sender || call.peerJid),
        isVideo: !!call.isVideo, isGroup: !!call.isGroup, timestamp: call.offerTime || null
      });
    });
  }

  function muted(c) {
    var until = c.muteExpiration || 0;
    return until === -1 || until * 1000 > Date.now();
  }

  function participant(p) {
    return {id: wid(p.id), isAdmin: !!p.isAdmin, isSuperAdmin: !!p.isSuperAdmin};
  }

  function groupInfo(gid) {
    var W = wpp();
    // An unknown group: no chat (or no metadata), and then null, not getParticipants' error.
    return Promise.resolve(W.chat.get(gid)).then(function (chat) {
      var meta = chat && chat.groupMetadata;
      if (!meta) {
        return null;
      }
      return Promise.resolve(W.group.getParticipants(gid)).then(function (people) {
        return {
          id: wid(chat.id), name: meta.subject || chat.name || null, subject: meta.subject || null,
          description: meta.desc || null, owner: wid(meta.owner), creation: meta.creation || null,
          participants: (people || []).map(participant),
          settings: {announce: !!meta.announce, restrict: !!meta.restrict}
        };
      });
    });
  }

  Object.assign(calls, {
    chats: function () {
      return Promise.resolve(wpp().chat.list()).then(function (list) {
        return (list || []).map(function (c) {
          var last = c.lastReceivedKey ? {id: wid(c.lastReceivedKey)} : null;
          return {id: wid(c.id), name: c.name || c.formattedTitle || null,
                  isGroup: !!c.isGroup || /@g\.us$/.test(wid(c.id) || ''),
                  unreadCount: c.unreadCount < 0 ? 1 : c.unreadCount || 0,  // -1: marked unread
                  timestamp: c.t || 0, lastMessage: last,
                  archived: !!c.archive, pinned: !!c.pin, muted: muted(c)};
        });
      });
    },
    groups: function () {
      var W = wpp();
      return Promise.resolve(W.group.getAllGroups()).then(function (list) {
        return Promise.all((list || []).map(function (g) {
          var gid = wid(g.id);
          return Promise.resolve(W.group.getParticipants(gid)).then(function (ps) {
            var meta = g.groupMetadata || {};
            return {id: gid, name: meta.subject || g.name || g.formattedTitle || null,
                    subject: meta.subject || g.name || null,
                    participants: (ps || []).map(participant)};
          });
        }));
      });
    },
    contact: function (id) {
      var W = wpp();
      return Promise.resolve(W.contact.get(id)).then(function (c) {
        if (!c) {
          return null;
        }
        return Promise.all([Promise.resolve(W.contact.getStatus(id)).catch(function () { return null; }),
                            Promise.resolve(W.blocklist.isBlocked(id))]).then(function (more) {
          var about = more[0] && typeof more[0] === 'object' ? more[0].status : more[0];
          return {id: wid(c.id), number: (wid(c.id) || '').split('@')[0],
                  name: c.name || c.pushname || null, pushName: c.pushname || null,
                  isBusiness: !!c.isBusiness, isBlocked: !!more[1], about: about || null};
        });
      });
    },
    contactPicture: function (id) {
      return Promise.resolve(wpp().contact.getProfilePictureUrl(id, true)).then(function (url) {
        return url || null;
      });
    },
    blockContact: function (id, block) {
      var list = wpp().blocklist;
      return Promise.resolve(block ? list.blockContact(id) : list.unblockContact(id)).then(function () {
        return null;
      });
    },
    markChat: function (id, read) {
      var chat = wpp().chat;
      return Promise.resolve(read ? chat.markIsRead(id) : chat.markIsUnread(id)).then(function () {
        return null;
      });
    },
    archiveChat: function (id, archive) {
      return Promise.resolve(wpp().chat.archive(id, archive)).then(function () { return null; });
    },
    pinChat: function (id, pin) {
      return Promise.resolve(wpp().chat.pin(id, pin)).then(function () { return null; });
    },
    muteChat: function (id, duration) {
      var chat = wpp().chat;
      var done = duration === 0 ? chat.unmute(id)
        : chat.mute(id, duration === null ? {expiration: -1} : {duration: duration});
      return Promise.resolve(done).then(function () { return null; });
    },
    deleteChat: function (id) {
      return Promise.resolve(wpp().chat.delete(id)).then(function () { return null; });
    },
    setPresence: function (presence) {
      return Promise.resolve(wpp().conn.markAvailable(presence === 'available')).then(function () {
        return null;
      });
    },
    chatState: function (id, state) {
      var chat = wpp().chat;
      var done = state === 'typing' ? chat.markIsComposing(id)
        : state === 'recording' ? chat.markIsRecording(id) : chat.markIsPaused(id);
      return Promise.resolve(done).then(function () { return null; });
    },
    groupInfo: groupInfo,
    createGroup: function (subject, ids) {
      var W = wpp();
      return Promise.resolve(W.group.create(subject, ids)).then(function (made) {
        var gid = wid(made.gid);
        var found = made.participants || {};
        var results = ids.map(function (id) {
          var r = found[id] || {};
          var code = Number(r.code || 200);
          return {id: id, code: code, success: code === 200, message: r.message || null};
        });
        return groupInfo(gid).then(function (info) {
          return Object.assign(info || {id: gid, subject: subject}, {results: results});
        });
      });
    },
    participants: function (gid, action, ids) {
      var group = wpp().group;
      var fn = {add: group.addParticipants, remove: group.removeParticipants,
                promote: group.promoteParticipants, demote: group.demoteParticipants}[action];
      return Promise.resolve(fn(gid, ids)).then(function (found) {
        found = found && typeof found === 'object' ? found : {};
        return ids.map(function (id) {
          var r = found[id] || {};
          var code = Number(r.code || 200);
          return {id: id, code: code, success: code === 200, message: r.message || null};
        });
      });
    },
    groupSubject: function (gid, subject) {
      return Promise.resolve(wpp().group.setSubject(gid, subject)).then(function () { return null; });
    },
    groupDescription: function (gid, description) {
      return Promise.resolve(wpp().group.setDescription(gid, description)).then(function () {
        return null;
      });
    },
    groupSettings: function (gid, announce, restrict) {
      var group = wpp().group;
      var steps = [];
      if (announce !== null) {
        steps.push(group.setProperty(gid, 'announcement', announce));
      }
      if (restrict !== null) {
        steps.push(group.setProperty(gid, 'restrict', restrict));
      }
      return Promise.all(steps).then(function () { return null; });
    },
    inviteCode: function (gid, revoke) {
      var group = wpp().group;
      return Promise.resolve(revoke ? group.revokeInviteCode(gid) : group.getInviteCode(gid));
    },
    joinGroup: function (code) {
      return Promise.resolve(wpp().group.join(code)).then(function (joined) {
        return joined ? wid(joined.id) : null;
      });
    },
    leaveGroup: function (gid) {
      return Promise.resolve(wpp().group.leave(gid)).then(function () { return null; });
    }
  });

  Object.keys(actionCalls).forEach(function (name) {  // message actions (issue 13.1)
    calls[name] = actionCalls[name];
  });

  window.__openwa = {
    page: page,
    call: function (name, args) {
      var fn = calls[name];
      if (!fn) {
        return Promise.resolve(fail('UNKNOWN_CALL', 'no bridge call ' + name));
      }
      if (name !== 'state' && name !== 'drain' && !(wpp() && wpp().isReady)) {
        return Promise.resolve(fail('NOT_READY', 'WhatsApp Web is still loading'));
      }
      try {
        return Promise.resolve(fn.apply(null, args || [])).then(function (value) {
          return {ok: true, value: value === undefined ? null : value};
        }, function (error) {
          return fail('CALL_FAILED', error);
        });
      } catch (error) {
        return Promise.resolve(fail('CALL_FAILED', error));
      }
    }
  };
})();
