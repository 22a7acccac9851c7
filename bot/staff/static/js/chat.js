// Cohort chat: fills the window, starts at the bottom, polls for new messages.
(function () {
  var seconds = Number(document.currentScript.dataset.pollSeconds) || 5;
  var chat = document.getElementById("chat");
  if (!chat) return;
  function atBottom() { return chat.scrollTop + chat.clientHeight >= chat.scrollHeight - 120; }
  function toBottom() { chat.scrollTop = chat.scrollHeight; }
  function fit() {  // the chat fills the window below the page's head, like WhatsApp Web
    var top = chat.getBoundingClientRect().top + window.scrollY;
    chat.style.maxHeight = Math.max(320, window.innerHeight - top - 16) + "px";
  }
  if (chat.classList.contains("scroll")) { fit(); window.addEventListener("resize", fit); }
  if (!/[?&]after=/.test(location.search)) toBottom();
  if (!chat.dataset.poll) return;
  var last = chat.dataset.last;
  function poll() {
    fetch(chat.dataset.poll + "?after=" + encodeURIComponent(last),
          {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !data.html) return;
        var stick = atBottom();
        var empty = chat.querySelector(".empty-chat");
        if (empty) empty.remove();
        chat.insertAdjacentHTML("beforeend", data.html);
        last = data.last_id;
        if (stick) toBottom();
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, seconds * 1000); });
  }
  setTimeout(poll, seconds * 1000);
})();
