/* ClassCast teacher's app: live updates, drops, keys. No framework but htmx. */
(function () {
  "use strict";

  // ------------------------------------------------------------ chosen panels
  var chosen = new Set(JSON.parse(sessionStorage.getItem("classcast-targets") || "[]"));
  function restoreChoice() {
    document.querySelectorAll("input.target").forEach(function (box) {
      box.checked = chosen.has(box.value);
    });
  }
  document.addEventListener("change", function (e) {
    var box = e.target;
    if (box.matches && box.matches("input.target")) {
      if (box.checked) chosen.add(box.value); else chosen.delete(box.value);
      sessionStorage.setItem("classcast-targets", JSON.stringify(Array.from(chosen)));
    }
  });

  // ------------------------------------------------------------ live: server-sent events, only while visible
  var source = null;
  function swap(id, html) {
    var el = document.getElementById(id);
    if (!el) return;
    el.innerHTML = html;
    if (window.htmx) htmx.process(el);
    if (id === "panels") restoreChoice();
    if (id === "cast") markCurrent();
  }
  function openEvents() {
    if (source) return;
    source = new EventSource("/events");
    source.addEventListener("panels", function (e) { swap("panels", e.data); });
    source.addEventListener("cast", function (e) { swap("cast", e.data); });
  }
  function closeEvents() {
    if (source) { source.close(); source = null; }
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { closeEvents(); closeSocket(); } else { openEvents(); openSocket(); }
  });

  function markCurrent() {
    var now = document.getElementById("now");
    var index = now ? Number(now.dataset.index) + 1 : 0;
    document.querySelectorAll(".strip .item").forEach(function (b) {
      b.classList.toggle("current", Number(b.dataset.number) === index);
    });
  }

  // ------------------------------------------------------------ controls
  // Over a WebSocket kept open while the page is visible: a control is on the teacher's
  // critical path (the panel should move at once), and a message on an open socket
  // reaches the app about 1.5 ms sooner than a request. Answers come in order, each the
  // #messages fragment. Until the socket is open (or if it closed), a plain POST.
  var socket = null;
  function openSocket() {
    if (socket || !window.WebSocket) return;
    socket = new WebSocket("ws://" + location.host + "/control/socket");
    socket.onmessage = function (e) { document.getElementById("messages").innerHTML = e.data; };
    socket.onclose = function () { socket = null; };
  }
  function closeSocket() {
    if (socket) { socket.onclose = null; socket.close(); socket = null; }
  }
  function control(action, values) {
    var body = new URLSearchParams(Object.assign({ action: action }, values || {}));
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(body.toString());
      return Promise.resolve();
    }
    openSocket();  // for the next one
    return fetch("/control", { method: "POST", body: body, credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })  // as htmx: no swap on 4xx/5xx
      .then(function (html) { if (html !== null) document.getElementById("messages").innerHTML = html; })
      .catch(function () {});
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("button[data-action]") : null;
    if (button) { control(button.dataset.action); return; }
    var opener = e.target.closest ? e.target.closest("button.pair-open") : null;
    if (opener) {
      document.getElementById("pair-address").value = opener.dataset.address;
      document.getElementById("pair-room").textContent = opener.dataset.room;
      document.getElementById("pair-messages").innerHTML = "";
      document.getElementById("pair-dialog").showModal();
      document.getElementById("pair-pin").focus();
    }
    if (e.target.id === "pair-close") document.getElementById("pair-dialog").close();
  });

  function nowState() {
    var now = document.getElementById("now");
    return now ? now.dataset : {};
  }
  // A presenter remote sends PageDown/PageUp (some send arrows), B or "." to blank.
  document.addEventListener("keydown", function (e) {
    var tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || e.target.isContentEditable) return;
    if (document.querySelector("dialog[open]") || e.ctrlKey || e.metaKey || e.altKey) return;
    var action = null;
    switch (e.code) {
      case "PageDown": case "ArrowRight": case "Space": action = "next"; break;
      case "PageUp": case "ArrowLeft": action = "prev"; break;
      case "KeyB": case "Period": action = nowState().blanked === "1" ? "unblank" : "blank"; break;
      case "KeyP": case "KeyK": action = nowState().state === "paused" ? "play" : "pause"; break;
    }
    if (action) { e.preventDefault(); control(action); }
  });

  // ------------------------------------------------------------ lessons: drop or choose
  var status = function (text) { document.getElementById("upload-status").textContent = text; };
  var bar = function () { return document.getElementById("upload-progress"); };
  var defaultTitle = function () { return document.querySelector("main").dataset.defaultTitle; };

  var OFFICE_NAME = /\.(pptx?|odp|docx?|odt|rtf)$/i;  // media.office.OFFICE_SUFFIXES

  function stem(name) { var i = name.lastIndexOf("."); return i > 0 ? name.slice(0, i) : name; }

  // files: [{file, path}] with paths relative to the lesson folder
  async function upload(files, title) {
    if (!files.length) return;
    var total = files.reduce(function (n, f) { return n + f.file.size; }, 0);
    var form = new URLSearchParams({ title: title, total_bytes: String(total) });
    var begun = await fetch("/lessons", { method: "POST", body: form });
    var answer = await begun.json();
    if (!begun.ok) { status(answer.error); return; }
    var done = 0;
    bar().hidden = false;
    for (var i = 0; i < files.length; i++) {
      var f = files[i];
      status(f.path);
      var error = await put("/lessons/" + answer.key + "/files?path=" + encodeURIComponent(f.path), f.file,
        function (loaded) { bar().value = Math.round(100 * (done + loaded) / Math.max(total, 1)); });
      if (error) { status(error); bar().hidden = true; return; }
      done += f.file.size;
    }
    bar().hidden = true;
    // The app makes office documents into pages when the drop is done: say so meanwhile.
    var office = files.some(function (f) { return OFFICE_NAME.test(f.path); });
    status(office ? document.querySelector("main").dataset.converting : "");
    await htmx.ajax("POST", "/lessons/" + answer.key + "/done", { target: "#lesson", swap: "innerHTML" });
    status("");
    markCurrent();
  }

  function put(url, file, onProgress) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      xhr.onload = function () {
        if (xhr.status === 204) { resolve(null); return; }
        try { resolve(JSON.parse(xhr.responseText).error); } catch (err) { resolve(String(xhr.status)); }
      };
      xhr.onerror = function () { resolve(String(xhr.status || "?")); };
      xhr.send(file);
    });
  }

  function fromInput(input) {
    var list = Array.from(input.files);
    if (!list.length) return;
    var rel = list[0].webkitRelativePath || "";
    if (rel.indexOf("/") > 0) {  // a folder: strip its name, use it as the title
      var top = rel.split("/")[0];
      upload(list.map(function (f) {
        return { file: f, path: f.webkitRelativePath.split("/").slice(1).join("/") };
      }), top);
    } else {
      upload(list.map(function (f) { return { file: f, path: f.name }; }),
        list.length === 1 ? stem(list[0].name) : defaultTitle());
    }
    input.value = "";
  }

  function readEntry(entry, prefix, out) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        entry.file(function (file) { out.push({ file: file, path: prefix + file.name }); resolve(); },
          function () { resolve(); });
      } else if (entry.isDirectory) {
        var reader = entry.createReader();
        var all = [];
        var more = function () {
          reader.readEntries(function (batch) {
            if (!batch.length) {
              Promise.all(all.map(function (e) { return readEntry(e, prefix + entry.name + "/", out); }))
                .then(function () { resolve(); });
            } else { all = all.concat(Array.from(batch)); more(); }
          }, function () { resolve(); });
        };
        more();
      } else resolve();
    });
  }

  async function fromDrop(dataTransfer) {
    var entries = Array.from(dataTransfer.items || [])
      .map(function (item) { return item.webkitGetAsEntry ? item.webkitGetAsEntry() : null; })
      .filter(Boolean);
    if (entries.length === 1 && entries[0].isDirectory) {
      var out = [];
      await readEntry(entries[0], "", out);
      var name = entries[0].name + "/";
      upload(out.map(function (f) { return { file: f.file, path: f.path.slice(name.length) }; }), entries[0].name);
      return;
    }
    if (entries.length) {
      var files = [];
      await Promise.all(entries.map(function (e) { return readEntry(e, "", files); }));
      upload(files, files.length === 1 ? stem(files[0].file.name) : defaultTitle());
      return;
    }
    var plain = Array.from(dataTransfer.files || []);
    upload(plain.map(function (f) { return { file: f, path: f.name }; }),
      plain.length === 1 ? stem(plain[0].name) : defaultTitle());
  }

  document.addEventListener("DOMContentLoaded", function () {
    restoreChoice();
    markCurrent();
    if (!document.hidden) { openEvents(); openSocket(); }
    var drop = document.getElementById("drop");
    if (!drop) return;
    document.getElementById("pick-files").addEventListener("change", function (e) { fromInput(e.target); });
    document.getElementById("pick-folder").addEventListener("change", function (e) { fromInput(e.target); });
    drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      drop.classList.remove("over");
      fromDrop(e.dataTransfer);
    });
    document.body.addEventListener("htmx:afterSwap", function (e) {
      if (e.detail.target && e.detail.target.id === "lesson") markCurrent();
    });
    // A pasted link that became an item is cleared; a refused one stays, to be fixed.
    document.body.addEventListener("htmx:afterRequest", function (e) {
      var form = e.detail.elt;
      if (!form.matches || !form.matches("form.paste-link") || !e.detail.successful) return;
      if (!document.querySelector("#lesson .msg.error")) form.reset();
    });
  });
})();
