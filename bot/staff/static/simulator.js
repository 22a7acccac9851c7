/* The simulator page: pick a graduate, read and type their messages (texts and settings come
   from the page's #simulator-config). */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("simulator-config").textContent);
  var base = config.base, T = config.texts;
  var FINAL = {received: 1, delivered: 1, read: 1, failed: 1, undelivered: 1, suppressed: 1};
  var who = null;          // {graduate_id: …} or {phone: …}
  var shown = {};          // message id -> element
  var lastId = 0, lastDay = null, timer = null, busy = false;
  var chat = document.getElementById("chat");
  var notice = document.getElementById("notice");

  function query(extra) {
    var params = new URLSearchParams(who);
    Object.keys(extra || {}).forEach(function (k) { params.set(k, extra[k]); });
    return params.toString();
  }

  function say(key, values) {
    // A text of the page's language with {name} placeholders filled in.
    return String(T[key] || key).replace(/\{(\w+)\}/g, function (all, name) {
      return values && name in values ? values[name] : all;
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function formatted(body) {
    // WhatsApp's *bold*, built from text nodes (never innerHTML).
    var node = el("div", "");
    body.split(/(\*[^*\n]+\*)/).forEach(function (part) {
      if (/^\*[^*\n]+\*$/.test(part)) node.appendChild(el("strong", "", part.slice(1, -1)));
      else if (part) node.appendChild(document.createTextNode(part));
    });
    return node;
  }

  // WhatsApp quick-reply buttons under a message: a tap sends the button, not typed text.
  function quickReplies(buttons) {
    var row = el("div", "buttons");
    buttons.forEach(function (b) {
      var button = el("button", "quick", b.title);
      button.type = "button";
      button.addEventListener("click", function () {
        send(Object.assign({body: "", button: b.id, button_text: b.title}, who));
      });
      row.appendChild(button);
    });
    return row;
  }

  function send(payload) {
    fetch(base + "api/send", {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify(payload)})
      .then(function (r) {
        notice.textContent = r.ok ? "" : say("webhook_answered", {status: r.status});
        poll();
      });
  }

  function bubble(m, name) {
    var node = el("div", "bubble " + (m.direction === "in" ? "in" : "out"));
    node.appendChild(el("div", "who", m.direction === "in" ? name : "Kabar" +
                        (m.kind && m.kind !== "reply" ? " · " + m.kind_label : "")));
    if (m.media_type) node.appendChild(el("div", "media", "[" + m.media_type + "]"));
    if (m.body) node.appendChild(formatted(m.body));
    if (m.buttons && m.buttons.length) node.appendChild(quickReplies(m.buttons));
    var meta = el("div", "meta", m.time);
    if (m.direction !== "in") {
      var st = el("span", "st-" + m.status, " · " + m.status_label +
                  (m.error_code ? " (" + m.error_code + ")" : ""));
      meta.appendChild(st);
    }
    node.appendChild(meta);
    return node;
  }

  function render(data) {
    var g = data.graduate;
    var name = g ? g.name : data.phone;
    var head = document.querySelector("#chathead .who-box");
    head.innerHTML = "";
    head.appendChild(el("div", "name", name));
    head.appendChild(el("div", "sub", (g ? g.phone + " · " + (g.cohort || T.no_cohort_short) +
        (g.opted_out ? " · " + T.opted_out : "") + (g.active ? "" : " · " + T.inactive)
        : data.phone + " · " + T.not_on_roster)));
    if (data.messages.length && !lastId) chat.innerHTML = "";
    var atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
    data.messages.forEach(function (m) {
      var node = bubble(m, name);
      if (shown[m.id]) {
        chat.replaceChild(node, shown[m.id]);
      } else {
        if (m.date !== lastDay) {
          var day = el("div", "day");
          day.appendChild(el("span", "", m.date));
          chat.appendChild(day);
          lastDay = m.date;
        }
        chat.appendChild(node);
        chat.appendChild(el("div", "clear"));
      }
      shown[m.id] = node;
      node.dataset.status = m.status;
      lastId = Math.max(lastId, m.id);
    });
    if (atBottom || data.messages.length) chat.scrollTop = chat.scrollHeight;
  }

  function oldestUnsettled() {
    // Poll from just before the oldest message whose status may still change.
    var ids = Object.keys(shown).map(Number).filter(function (id) {
      return !FINAL[shown[id].dataset.status];
    });
    return ids.length ? Math.min.apply(null, ids) - 1 : lastId;
  }

  function poll() {
    if (!who || busy) return;
    busy = true;
    fetch(base + "api/messages?" + query({after_id: oldestUnsettled()}))
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(render)
      .catch(function (e) { notice.textContent = say("load_failed", {error: e}); })
      .finally(function () { busy = false; });
  }

  function open(target) {
    who = target; shown = {}; lastId = 0; lastDay = null;
    chat.innerHTML = "";
    chat.appendChild(el("p", "empty", T.no_messages));
    document.body.classList.add("chatting");
    notice.textContent = "";
    document.getElementById("composer").hidden = false;
    document.querySelectorAll(".grad").forEach(function (a) {
      a.classList.toggle("selected", target.graduate_id === a.dataset.id);
    });
    if (timer) clearInterval(timer);
    poll();
    timer = setInterval(poll, 1000);
    document.getElementById("body").focus();
  }

  document.querySelectorAll(".grad").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      ev.preventDefault();
      history.replaceState(null, "", "?graduate_id=" + a.dataset.id);
      open({graduate_id: a.dataset.id});
    });
  });

  document.getElementById("phoneform").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var phone = document.getElementById("phoneinput").value.trim();
    if (phone) open({phone: phone});
  });

  document.getElementById("composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = document.getElementById("body");
    var media = document.getElementById("media");
    if (!input.value.trim() && !media.value) return;
    var payload = Object.assign({body: input.value, media: media.value}, who);
    input.value = ""; media.value = "";
    send(payload);
  });

  document.querySelectorAll(".startround").forEach(function (b) {
    b.addEventListener("click", function () {
      fetch(base + "api/cohorts/" + b.dataset.cohortId + "/checkin", {method: "POST"})
        .then(function (r) { return r.json(); })
        .then(function (d) {
          notice.textContent = say(d.started ? "checkin_started" : "checkin_exists", d);
          poll();
        });
    });
  });

  document.getElementById("search").addEventListener("input", function (ev) {
    var q = ev.target.value.trim().toLowerCase();
    document.querySelectorAll(".cohort").forEach(function (section) {
      var cohortHit = section.dataset.cohort.indexOf(q) !== -1;
      var any = false;
      section.querySelectorAll(".grad").forEach(function (a) {
        var hit = !q || cohortHit || a.dataset.search.indexOf(q) !== -1;
        a.hidden = !hit;
        any = any || hit;
      });
      section.hidden = !!q && !any && !cohortHit;
    });
  });

  document.getElementById("back").addEventListener("click", function () {
    // Back to the list on a phone; the chat stays open on a wide screen.
    document.body.classList.remove("chatting");
    history.replaceState(null, "", base);
  });

  if (config.selected) open({graduate_id: String(config.selected)});
})();
