// Lore Console: streamed answers, votes, ingest progress and health checks. No framework, no build step.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function post(path, body, extra) {
  const isForm = body instanceof FormData;
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: Object.assign(isForm ? {} : { "Content-Type": "application/json" }, { "X-CSRF-Token": csrf() }, extra || {}),
    body: isForm ? body : JSON.stringify(body || {}),
  });
  return response;
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || response.statusText);
  return response.json();
}

// -- answers ---------------------------------------------------------------------------------------------

// This page's conversation: files dropped here are searched for its questions only (and only for this user).
const conversation = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

// Reads a server-sent event stream from a POST; calls onEvent(name, data) for each event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

function openPassage(passage) {
  const dialog = document.getElementById("passage");
  dialog.querySelector(".title").textContent = `[${passage.number}] ${passage.title || passage.uri}`;
  dialog.querySelector(".heading").textContent = passage.heading || "";
  dialog.querySelector(".text").textContent = passage.text || "(the passage is no longer in the knowledge base)";
  const link = dialog.querySelector(".uri");
  link.textContent = passage.uri;
  link.href = /^https?:\/\//.test(passage.uri) ? passage.uri : "#";
  dialog.showModal();
}

// The answer text with each [n] turned into a button that opens passage n.
function renderAnswer(container, text, passages) {
  container.textContent = "";
  const byNumber = new Map(passages.map((p) => [String(p.number), p]));
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    container.append(document.createTextNode(text.slice(last, match.index)));
    const passage = byNumber.get(match[1]);
    if (passage) {
      const cite = document.createElement("button");
      cite.className = "cite";
      cite.textContent = match[1];
      cite.title = passage.title || passage.uri;
      cite.addEventListener("click", () => openPassage(passage));
      container.append(cite);
    } else {
      container.append(document.createTextNode(match[0]));
    }
    last = match.index + match[0].length;
  }
  container.append(document.createTextNode(text.slice(last)));
}

function renderCitations(list, passages) {
  list.textContent = "";
  for (const passage of passages) {
    const item = document.createElement("li");
    item.value = passage.number;  // the number the answer's text cites it by
    const open = document.createElement("button");
    open.className = "link citation";
    open.textContent = passage.title || passage.uri;
    open.addEventListener("click", () => openPassage(passage));
    item.append(open);
    list.append(item);
  }
}

// Streams an answer from `path` into `textEl`; resolves with the final answer document.
async function streamAnswer(path, body, textEl) {
  const response = await post(path, body, { Accept: "text/event-stream" });
  if (!response.ok) {
    const error = (await response.json().catch(() => ({}))).error || response.statusText;
    textEl.textContent = `Error: ${error}`;
    textEl.classList.add("error");
    throw new Error(error);
  }
  let final = null;
  let text = "";
  await readEvents(response, (name, data) => {
    if (name === "token") {
      text += data.text;
      textEl.textContent = text;
    } else if (name === "done") {
      final = data;
    } else if (name === "error") {
      textEl.textContent = data.error;
      textEl.classList.add("error");
    }
  });
  textEl.classList.remove("streaming");
  if (final) renderAnswer(textEl, final.answer, final.passages || []);
  return final;
}

function setupTurn(turn, final) {
  const id = final.answer_id;
  turn.dataset.answer = id;
  renderCitations(turn.querySelector(".citations"), final.passages || []);
  const actions = turn.querySelector(".actions");
  const status = actions.querySelector(".status");
  actions.hidden = false;
  actions.querySelector(".trace").href = `/console/answers/${id}`;
  for (const button of actions.querySelectorAll(".vote")) {
    button.addEventListener("click", async () => {
      const value = button.classList.contains("chosen") ? "clear" : button.dataset.value;
      const response = await post(`/api/v1/answers/${id}/vote`, { value });
      const result = await response.json();
      if (!response.ok) { status.textContent = result.error; return; }
      for (const other of actions.querySelectorAll(".vote")) other.classList.remove("chosen");
      if (value !== "clear") button.classList.add("chosen");
      status.textContent = value === "clear" ? "Vote cleared" : `Recorded: ${value === "up" ? "helpful" : "not helpful"}`;
      askWhichSource(turn, id, value === "up" ? final.passages || [] : [], status);
    });
  }
  actions.querySelector(".critique-open").addEventListener("click", () => {
    turn.querySelector(".critique").hidden = false;
  });
  turn.querySelector(".critique").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const response = await post(`/api/v1/answers/${id}/critique`, {
      critique: form.critique.value, correction: form.correction.value || null,
    });
    status.textContent = response.ok ? "Thanks: recorded" : "Could not record it";
    form.hidden = true;
  });
  actions.querySelector(".regenerate").addEventListener("click", () => regenerate(turn, final));
}

// After a thumbs-up on an answer with several sources: which one answered it? (optional; it teaches Lore which
// page to put first for similar questions)
function askWhichSource(turn, id, passages, status) {
  const box = turn.querySelector(".answered-by");
  for (const old of box.querySelectorAll("button")) old.remove();
  const sources = [...new Map(passages.map((p) => [p.uri, p])).values()];
  box.hidden = sources.length < 2;
  for (const source of sources.length < 2 ? [] : sources.slice(0, 5)) {
    const choose = document.createElement("button");
    choose.className = "source-pick";
    choose.textContent = source.title || source.uri;
    choose.addEventListener("click", async () => {
      const response = await post(`/api/v1/answers/${id}/vote`, { value: "up", source: source.uri });
      const result = await response.json();
      status.textContent = response.ok ? `Recorded: ${choose.textContent} answered it` : result.error;
      if (response.ok) box.hidden = true;
    });
    box.append(choose);
  }
}

async function regenerate(turn, original) {
  const compare = turn.querySelector(".compare");
  const pair = compare.querySelector(".pair");
  compare.hidden = false;
  pair.textContent = "";
  const columns = [original.answer_id, null].map((answerId, i) => {
    const column = document.createElement("div");
    column.className = "option";
    const text = document.createElement("div");
    text.className = "text" + (i ? " streaming" : "");
    if (!i) renderAnswer(text, original.answer, original.passages || []);
    const choose = document.createElement("button");
    choose.className = "choose";
    choose.textContent = i ? "This one is better" : "This one is better";
    choose.disabled = true;
    column.append(text, choose);
    pair.append(column);
    return { column, text, choose };
  });
  const fresh = await streamAnswer(`/api/v1/answers/${original.answer_id}/regenerate`, { conversation }, columns[1].text);
  if (!fresh) return;
  const ids = [original.answer_id, fresh.answer_id];
  columns.forEach(({ choose }, i) => {
    choose.disabled = false;
    choose.addEventListener("click", async () => {
      const response = await post(`/api/v1/answers/${ids[i]}/compare`, { rejected: ids[1 - i] });
      compare.querySelector("p").textContent = response.ok ? "Thanks: your choice was recorded" : "Could not record it";
      for (const c of columns) c.choose.disabled = true;
      choose.classList.add("chosen");
    });
  });
}

function setupAsk() {
  const form = document.getElementById("ask-form");
  if (!form) return;
  const input = document.getElementById("question");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) return;
    input.value = "";
    const turn = document.getElementById("answer-template").content.firstElementChild.cloneNode(true);
    turn.querySelector(".q").textContent = question;
    document.getElementById("conversation").append(turn);
    const button = document.getElementById("ask-button");
    button.disabled = true;
    try {
      const final = await streamAnswer("/api/v1/ask", { question, conversation }, turn.querySelector(".answer .text"));
      if (final) setupTurn(turn, final);
    } finally {
      button.disabled = false;
      input.focus();
    }
  });
}

// Files dropped on the conversation (or chosen with Attach) are indexed for it; their job's progress shows inline.
async function attach(files) {
  if (!files.length) return;
  const line = document.createElement("p");
  line.className = "attachment";
  line.textContent = `Attaching ${Array.from(files, (f) => f.name).join(", ")}…`;
  document.getElementById("conversation").append(line);
  const data = new FormData();
  for (const file of files) data.append("files", file);
  const response = await post(`/api/v1/conversations/${conversation}/files`, data);
  let job = await response.json();
  if (!response.ok) {
    line.textContent = `Not attached: ${job.error}`;
    line.classList.add("error");
    return;
  }
  while (job.status !== "done" && job.status !== "failed") {
    line.textContent = `Indexing ${job.sources.map((s) => s.split("/").pop()).join(", ")}… ${Math.round(job.progress * 100)}%`;
    await new Promise((resolve) => setTimeout(resolve, 500));
    job = await getJson(`/api/v1/conversations/${conversation}/jobs/${job.id}`);
  }
  const names = job.sources.map((s) => s.split("/").pop()).join(", ");
  const errors = (job.errors || []).map((e) => e.error).join("; ");
  line.dataset.status = job.status;
  line.textContent = errors ? `Not attached: ${errors}` : `Attached ${names}: ask about it in this conversation.`;
  if (errors) line.classList.add("error");
}

function setupAttachments() {
  const zone = document.querySelector(".ask");
  const input = document.getElementById("attach-input");
  if (!zone || !input) return;
  input.addEventListener("change", () => { attach(input.files); input.value = ""; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dropping"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dropping");
    attach(event.dataTransfer.files);
  });
}

// -- knowledge -------------------------------------------------------------------------------------------

function jobRow(job) {
  let row = document.querySelector(`.job[data-job="${job.id}"]`);
  if (!row) {
    row = document.createElement("div");
    row.className = "job";
    row.dataset.job = job.id;
    row.append(`job ${job.id} · `);
    const status = document.createElement("span");
    status.className = "job-status";
    const bar = document.createElement("progress");
    bar.max = 1;
    const detail = document.createElement("span");
    detail.className = "muted detail";
    row.append(status, " ", bar, " ", detail);
    document.getElementById("jobs").prepend(row);
  }
  row.dataset.status = job.status;
  row.querySelector(".job-status").textContent = job.status;
  row.querySelector("progress").value = job.progress;
  const detail = row.querySelector(".detail");
  if (detail) {
    const counts = Object.entries(job.counts || {}).map(([k, v]) => `${k.replace("documents_", "")} ${v}`).join(", ");
    const errors = (job.errors || []).map((e) => `${e.source}: ${e.error}`).join("; ");
    detail.textContent = [counts, errors].filter(Boolean).join(" · ");
  }
  return row;
}

async function watchJob(id) {
  for (;;) {
    const job = await getJson(`/api/v1/jobs/${id}`);
    jobRow(job);
    if (job.status === "done" || job.status === "failed") return job;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function setupKnowledge() {
  const form = document.getElementById("ingest-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      if (!data.get("urls")) data.delete("urls");
      const response = await post("/api/v1/ingest", data);
      const result = await response.json();
      if (!response.ok) {
        const row = document.createElement("p");
        row.className = "error ingest-error";
        row.textContent = result.error;
        document.getElementById("jobs").prepend(row);
        return;
      }
      form.reset();
      jobRow(result);
      watchJob(result.id);
    });
    for (const row of document.querySelectorAll(".job")) {
      if (row.dataset.status === "queued" || row.dataset.status === "running") watchJob(row.dataset.job);
    }
  }
  const remove = document.getElementById("remove-document");
  if (remove) {
    remove.addEventListener("click", async () => {
      if (!confirm("Remove this document and its passages from the knowledge base?")) return;
      const response = await post(`/api/v1/documents/${remove.dataset.document}/delete`, {});
      const result = await response.json();
      document.getElementById("remove-status").textContent = response.ok ? "Removed" : result.error;
      if (response.ok) setTimeout(() => { window.location = "/console/knowledge"; }, 600);
    });
  }
}

// -- settings --------------------------------------------------------------------------------------------

async function setupHealth() {
  if (!document.getElementById("health")) return;
  try {
    const health = await getJson("/console/settings/health");
    for (const [part, result] of Object.entries(health)) {
      const row = document.querySelector(`[data-health="${part}"]`);
      if (!row) continue;
      row.querySelector(".state").textContent = result.ok ? "✓ up" : "✗ down";
      row.querySelector(".state").className = "state " + (result.ok ? "pos" : "neg");
      row.querySelector(".detail").textContent = `${result.detail} (${result.ms} ms)`;
    }
  } catch (error) {
    document.querySelector("#health .state").textContent = String(error);
  }
}

// -- sign-in ---------------------------------------------------------------------------------------------

// The confirmation asked of a sign-in link that came from elsewhere: its token leaves the address bar (the form
// carries it), as after a direct sign-in.
function setupSigninConfirm() {
  if (document.getElementById("signin-confirm")) history.replaceState(null, "", "/console/signin");
}

document.addEventListener("DOMContentLoaded", () => {
  setupSigninConfirm();
  setupAsk();
  setupAttachments();
  setupKnowledge();
  setupHealth();
});
