// The reference booking page: plain JavaScript, no build step, no framework.
// Flow: services -> vacancies of a date -> hold the chosen time -> contact details -> book with
// the hold's reservationToken and an Idempotency-Key -> the ticket. The API's problems
// (application/problem+json) are shown next to the field each `errors[].field` names.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// The page's own backend mints short-lived tokens: here the dev server's /demo/token. A real
// front end calls its own backend, which holds the credentials (see the README).
const TOKEN_URL = new URL("token", location.href).pathname;
const CHANNEL_PREFERENCE = ["Online", "FaceToFace", "Phone"];

const state = {
  token: null, tokenExpiresAt: 0, services: [], slot: null, hold: null, holdsSupported: true,
};

function randomKey() {
  // crypto.getRandomValues works outside secure contexts too (randomUUID does not).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function applicationId() { return $("application").value.trim(); }
function service() { return state.services.find((s) => s.id === $("service").value); }
function serviceType() { return service()?.serviceTypes.find((t) => t.id === $("service-type").value); }
function calendarUnit() { return service()?.calendarUnits[0]; }

function calendarPath() {
  return `/${applicationId()}/calendars/${service().id}/${$("date").value}/${calendarUnit().cuIndex}`;
}

function clock(minute) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(minute / 60))}:${pad(minute % 60)}`;
}

function channel() {
  const offered = serviceType().channels;
  return CHANNEL_PREFERENCE.find((c) => offered.includes(c)) ?? offered[0];
}

function notice(text) {
  $("notice").textContent = text ?? "";
  $("notice").hidden = !text;
}

function clearErrors() {
  notice(null);
  for (const el of document.querySelectorAll("[data-error-for]")) el.textContent = "";
}

// Each of a problem's errors next to its field; those naming no field of the page, and the
// problem's detail when it has no errors, in the notice.
function showProblem(problem) {
  const unplaced = [];
  for (const error of problem.errors ?? []) {
    const place = document.querySelector(`[data-error-for="${CSS.escape(error.field ?? "")}"]`);
    if (place) place.textContent = error.message;
    else unplaced.push(error.message);
  }
  if (!problem.errors?.length) unplaced.push(problem.detail ?? problem.title ?? "Request refused.");
  if (unplaced.length) notice(unplaced.join(" "));
}

async function token() {
  if (state.token && Date.now() < state.tokenExpiresAt - 30_000) return state.token;
  const answer = await fetch(TOKEN_URL, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ applicationId: applicationId() }),
  });
  const body = await answer.json();
  if (!answer.ok) throw Object.assign(new Error("no token"), { problem: body });
  state.token = body.token;
  state.tokenExpiresAt = Date.now() + body.expiresIn * 1000;
  return state.token;
}

// One API call: {status, body}. A network failure is retried once with the same headers (and
// so the same Idempotency-Key: a booking that did go through is answered again, not repeated).
async function api(method, path, { body, headers = {} } = {}) {
  const request = {
    method,
    headers: { Authorization: `Bearer ${await token()}`, ...headers },
  };
  if (body !== undefined) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(path, request);
  } catch {
    answer = await fetch(path, request);
  }
  const text = await answer.text();
  return { status: answer.status, body: text ? JSON.parse(text) : null };
}

async function guarded(work) {
  clearErrors();
  try {
    await work();
  } catch (error) {
    if (error.problem) showProblem(error.problem);
    else notice(`The server could not be reached (${error.message}).`);
  }
}

async function loadServices() {
  const { status, body } = await api("GET", `/${applicationId()}/services`);
  if (status !== 200) return showProblem(body);
  state.services = body.filter((s) => s.calendarUnits.length && s.serviceTypes.length);
  $("service").replaceChildren(...state.services.map((s) => new Option(s.name, s.id)));
  fillServiceTypes();
}

function fillServiceTypes() {
  const types = service()?.serviceTypes ?? [];
  $("service-type").replaceChildren(
    ...types.map((t) => new Option(`${t.name} (${t.duration} min)`, t.id)),
  );
}

function showTimes(starts, { nearest = false } = {}) {
  const buttons = starts.map((start) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = clock(start);
    button.dataset.start = start;
    if (nearest) button.className = "nearest";
    button.addEventListener("click", () => guarded(() => choose(start)));
    return button;
  });
  if (!buttons.length) {
    const none = document.createElement("p");
    none.className = "note";
    none.textContent = "No free time on this date.";
    buttons.push(none);
  }
  $("times").replaceChildren(...buttons);
  $("step-time").hidden = false;
}

async function loadVacancies() {
  $("step-details").hidden = true;
  const query = new URLSearchParams({ serviceTypeId: serviceType().id });
  const { status, body } = await api("GET", `${calendarPath()}/vacancies?${query}`);
  if (status !== 200) return showProblem(body);
  showTimes(body.slots);
}

// The slot was taken meanwhile: offer the nearest vacant starts the 409 names.
function taken(problem) {
  state.slot = null;
  $("step-details").hidden = true;
  notice("That time was just taken. The nearest free times:");
  showTimes(problem.nearestVacancies ?? [], { nearest: true });
}

async function releaseHold() {
  const hold = state.hold;
  state.hold = null;
  if (hold) await api("DELETE", `${hold.path}/reservations/${hold.token}`);
}

// Hold the chosen time while the customer types. A server without holds (404/405 on the
// route) is booked without one.
async function choose(start) {
  await releaseHold();
  state.slot = { start, path: calendarPath(), serviceTypeId: serviceType().id, channel: channel() };
  if (state.holdsSupported) {
    const { status, body } = await api("POST", `${state.slot.path}/reservations`, {
      body: { serviceTypeId: state.slot.serviceTypeId, startTime: start, channel: state.slot.channel },
      headers: { "Idempotency-Key": randomKey() },
    });
    if (status === 409) return taken(body);
    if ((status === 404 && body?.code === "route_not_found") || status === 405) {
      state.holdsSupported = false;
    } else if (status !== 201) return showProblem(body);
    else {
      state.hold = { token: body.reservationToken, path: state.slot.path };
      const until = new Date(body.reservationExpiryDate).toLocaleTimeString();
      $("held").textContent = `${clock(start)} is held for you until ${until}.`;
    }
  }
  if (!state.hold) $("held").textContent = `${clock(start)} is free (not held: book quickly).`;
  const required = service();
  $("phone").required = required.isPhoneNumberRequired;
  $("email").required = required.isEmailRequired;
  $("phone-optional").hidden = required.isPhoneNumberRequired;
  $("email-optional").hidden = required.isEmailRequired;
  $("customer-note").hidden = !required.isCustomerRequired;
  $("step-details").hidden = false;
  $("phone").focus();
}

async function book() {
  const slot = state.slot;
  const body = { serviceTypeId: slot.serviceTypeId, startTime: slot.start, channel: slot.channel };
  const phone = $("phone").value.trim();
  const email = $("email").value.trim();
  if (phone) body.contactPhoneNumber = phone;
  if (email) body.contactEmail = email;
  if (state.hold) body.reservationToken = state.hold.token;
  const answer = await api("POST", `${slot.path}/appointments`, {
    body,
    headers: { "Idempotency-Key": randomKey() },
  });
  if (answer.status === 409 && answer.body?.code === "slot_not_vacant") return taken(answer.body);
  if (answer.status !== 201) return showProblem(answer.body);
  state.hold = null; // consumed by the booking
  showTicket(answer.body);
}

function showTicket(appointment) {
  const { prefix, number, suffix } = appointment.ticket;
  $("ticket-number").textContent = `${prefix ?? ""}${number}${suffix ?? ""}`;
  const when = appointment.appointment.timeLocal.replace("T", " ").slice(0, 16);
  $("ticket-when").textContent = `${appointment.serviceTypeName}, ${when}`;
  $("ticket-case").textContent = appointment.caseId;
  for (const id of ["step-service", "step-time", "step-details"]) $(id).hidden = true;
  $("ticket").hidden = false;
}

function start() {
  $("application").value = params.get("applicationId") ?? "";
  const tomorrow = new Date(Date.now() + 86_400_000);
  $("date").value = params.get("date") ?? tomorrow.toISOString().slice(0, 10);
  $("application").addEventListener("change", () => {
    state.token = null;
    guarded(loadServices);
  });
  $("service").addEventListener("change", fillServiceTypes);
  $("show-times").addEventListener("click", () => guarded(loadVacancies));
  $("details").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(book);
  });
  if (applicationId()) guarded(loadServices);
  document.body.dataset.ready = "true";
}

start();
