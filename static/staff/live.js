// Follows a running run on its page through the run's event stream (Server-Sent Events).
//
// The stream replays every stored event from the first, then follows the run live.
// After a dropped connection the browser reconnects by itself and sends
// Last-Event-ID, so the server resumes after the last event seen. Events are
// applied once each, by sequence number. All text goes in through textContent,
// never as HTML.
(function () {
  "use strict";

  var root = document.querySelector("[data-live-run]");
  if (!root || root.dataset.finished === "true" || !window.EventSource) {
    return;
  }

  var EVENT_TYPES = [
    "start", "orchestration_started", "step_started", "content_delta", "tool_call",
    "delegation_started", "delegation_completed", "tool_result", "step_completed",
    "orchestration_completed", "chunk", "complete", "error",
  ];
  var TERMINAL = ["completed", "failed", "cancelled"];

  var renderedSeq = parseInt(root.dataset.lastSeq || "0", 10);
  var lastSeq = 0;
  var answerText = "";
  var childText = {};
  var startedAt = null;

  var answer = document.getElementById("answer");
  var statusBadge = document.getElementById("run-status");
  var liveState = document.getElementById("live-state");
  var children = document.getElementById("children");
  var timeline = document.querySelector("#timeline tbody");
  var childTemplate = document.getElementById("child-template");

  function setText(element, text) {
    if (element) {
      element.textContent = text == null ? "" : String(text);
    }
  }

  function setStatus(badge, status) {
    if (!badge) {
      return;
    }
    badge.className = badge.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + status;
    badge.textContent = status;
  }

  function setRunStatus(status) {
    root.dataset.status = status;
    setStatus(statusBadge, status);
  }

  function setConnection(state, label) {
    liveState.hidden = false;
    liveState.className = "live-state " + state;
    liveState.textContent = label;
  }

  function formatTokens(usage) {
    if (!usage || usage.total_tokens == null) {
      return "—";
    }
    return Number(usage.total_tokens).toLocaleString("en-US");
  }

  function formatCost(usage) {
    if (!usage || usage.cost_usd == null) {
      return "—";
    }
    var cost = Number(usage.cost_usd);
    if (cost === 0) {
      return "$0";
    }
    return "$" + cost.toFixed(cost < 0.01 ? 6 : 4);
  }

  function formatDuration(ms) {
    if (ms == null) {
      return "—";
    }
    if (ms < 1000) {
      return ms + " ms";
    }
    if (ms < 60000) {
      return (ms / 1000).toFixed(1) + " s";
    }
    return Math.floor(ms / 60000) + " min " + Math.floor((ms % 60000) / 1000) + " s";
  }

  function short(text, limit) {
    text = String(text == null ? "" : text).replace(/\s+/g, " ").trim();
    limit = limit || 160;
    return text.length <= limit ? text : text.slice(0, limit - 1) + "…";
  }

  // Mirrors event_summary() in orchestrations/views.py.
  function summary(data) {
    var usage = data.usage && data.usage.total_tokens != null ? data.usage.total_tokens + " tokens" : "";
    switch (data.event) {
      case "start":
        return "session " + (data.session_id || "—");
      case "orchestration_started":
        return data.strategy + " team " + data.name + " with " + data.entity_count + " entities";
      case "step_started":
        return "step " + data.step;
      case "tool_call":
        return data.tool_name + ": " + short(data.arguments && data.arguments.task);
      case "delegation_started":
        return "→ " + data.agent + ": " + short(data.task);
      case "delegation_completed":
        var parts = ["← " + data.agent + " " + data.status];
        if (data.duration_ms != null) {
          parts.push(data.duration_ms + " ms");
        }
        if (usage) {
          parts.push(usage);
        }
        return parts.join(", ") + ": " + short(data.content);
      case "tool_result":
        return data.tool_name + " (" + data.duration_ms + " ms): " + short(data.result_preview);
      case "step_completed":
        return "step " + data.step + " finished (" + data.finish_reason + ")";
      case "orchestration_completed":
        return data.status + " after " + data.steps + " steps, " + usage;
      case "chunk":
        return short(data.content);
      case "complete":
        return data.status + (data.stop_reason ? " (" + data.stop_reason + ")" : "") +
          (data.error ? ": " + data.error : "");
      case "error":
        return data.code + ": " + data.error;
      default:
        return "";
    }
  }

  function addTimelineRow(data) {
    if (!timeline || data.event === "content_delta" || data.seq <= renderedSeq) {
      return;
    }
    var empty = timeline.querySelector(".empty-row");
    if (empty) {
      empty.remove();
    }
    var ts = Date.parse(data.ts);
    var row = document.createElement("tr");
    row.dataset.seq = data.seq;
    if (data.event === "error" || (data.event === "complete" && data.status !== "completed")) {
      row.className = "is-error";
    }
    var cells = [
      [String(data.seq), "num"],
      [!isNaN(ts) && !isNaN(startedAt) ? "+" + ((ts - startedAt) / 1000).toFixed(2) + "s" : "", "offset"],
      [null, ""],
      [data.agent || "", ""],
      [summary(data), "summary"],
    ];
    cells.forEach(function (cell, index) {
      var td = document.createElement("td");
      if (cell[1]) {
        td.className = cell[1];
      }
      if (index === 2) {
        var badge = document.createElement("span");
        badge.className = "event event-" + data.event;
        badge.textContent = data.event;
        td.appendChild(badge);
      } else {
        td.textContent = cell[0];
      }
      row.appendChild(td);
    });
    timeline.appendChild(row);
  }

  function childNode(childId) {
    var nodes = children.querySelectorAll("li.child");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].dataset.childId === childId) {
        return nodes[i];
      }
    }
    return null;
  }

  function ensureChild(data) {
    var childId = data.child_execution_id || data.child_run_id;
    var node = childNode(childId);
    if (node) {
      return node;
    }
    node = childTemplate.content.querySelector("li.child").cloneNode(true);
    node.dataset.childId = childId;
    node.dataset.status = "running";
    setText(node.querySelector(".child-agent"), data.agent);
    setText(node.querySelector(".child-task"), data.task || "");
    children.appendChild(node);
    document.getElementById("no-children").hidden = true;
    return node;
  }

  function isFinishedChild(node) {
    return TERMINAL.indexOf(node.dataset.status) !== -1;
  }

  var handlers = {
    orchestration_started: function () {
      setRunStatus("running");
    },
    step_started: function () {
      setRunStatus("running");
    },
    content_delta: function (data) {
      var childId = data.child_execution_id;
      if (childId) {
        var node = childNode(childId);
        if (!node || isFinishedChild(node)) {
          return;
        }
        childText[childId] = (childText[childId] || "") + (data.delta || "");
        var text = node.querySelector(".child-answer");
        setText(text, childText[childId]);
        text.classList.add("streaming");
        return;
      }
      answerText += data.delta || "";
      setText(answer, answerText);
      answer.classList.add("streaming");
    },
    delegation_started: function (data) {
      setRunStatus("running");
      ensureChild(data);
    },
    delegation_completed: function (data) {
      var node = ensureChild(data);
      node.dataset.status = data.status;
      setStatus(node.querySelector(".child-status"), data.status);
      var text = node.querySelector(".child-answer");
      setText(text, data.content || "");
      text.classList.remove("streaming");
      setText(node.querySelector(".child-duration"), formatDuration(data.duration_ms));
      setText(node.querySelector(".child-tokens"), formatTokens(data.usage));
      setText(node.querySelector(".child-cost"), formatCost(data.usage));
    },
    tool_call: function () {
      // Text the coordinator streamed before delegating is not part of the final reply.
      answerText = "";
      setText(answer, "");
    },
    chunk: function (data) {
      answerText = data.content || "";
      setText(answer, answerText);
    },
    error: function (data) {
      document.getElementById("run-error").hidden = false;
      setText(document.getElementById("run-error-code"), data.code || "error");
      setText(document.getElementById("run-error-text"), data.error || "");
    },
    complete: function (data) {
      if (data.content) {
        setText(answer, data.content);
      }
      answer.classList.remove("streaming");
      setText(document.getElementById("run-tokens"), formatTokens(data.usage));
      setText(document.getElementById("run-cost"), formatCost(data.usage));
      setText(document.getElementById("run-steps"), data.steps);
      setRunStatus(data.status);
      finish();
    },
  };

  var source = null;

  function onEvent(message) {
    var data;
    try {
      data = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (typeof data.seq !== "number" || data.seq <= lastSeq) {
      return;
    }
    lastSeq = data.seq;
    if (startedAt === null) {
      // The replay starts at the first event, the same origin the server's offsets use.
      startedAt = Date.parse(data.ts);
    }
    addTimelineRow(data);
    var handler = handlers[data.event];
    if (handler) {
      handler(data);
    }
  }

  function finish() {
    if (source) {
      source.close();
    }
    setConnection("finished", "finished");
    refreshRecord();
  }

  // The finished run's stored record (durations, costs, the whole timeline)
  // replaces the live view, rendered by the server like any finished run.
  function refreshRecord() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        return response.ok && !response.redirected ? response.text() : null;
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("run");
        if (fresh && fresh.dataset.finished === "true") {
          root.replaceWith(document.importNode(fresh, true));
        }
      })
      .catch(function () {});
  }

  function connect() {
    source = new EventSource(root.dataset.eventsUrl);
    EVENT_TYPES.forEach(function (type) {
      source.addEventListener(type, onEvent);
    });
    source.onopen = function () {
      setConnection("live", "live");
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        setConnection("closed", "disconnected — reload to follow the run");
      } else {
        setConnection("reconnecting", "reconnecting…");
      }
    };
  }

  // Text already on the page for running delegations is rebuilt from the replay.
  Array.prototype.forEach.call(children.querySelectorAll("li.child"), function (node) {
    if (!isFinishedChild(node)) {
      setText(node.querySelector(".child-answer"), "");
    }
  });
  setText(answer, "");
  connect();
})();
