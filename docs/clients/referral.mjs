// referral.mjs: the exchange's JSON face from node (20.19 or later) with
// fetch, sealing and opening identifying details with the npm package
// age-encryption (docs/sealing.md).
//
//   node referral.mjs send REFERRAL.json DETAILS.json   seal the details, create
//   node referral.mjs follow NAME STATE [SECONDS]       poll until STATE
//   node referral.mjs open NAME                         read and open the details
//
// Environment: EXCHANGE_URL (https://host:7443), EXCHANGE_CERT, EXCHANGE_KEY
// and EXCHANGE_CA (the agency's certificate, its key and the exchange's CA
// certificate); EXCHANGE_AGENCY (the agency's id, to seal to its own key as
// well); EXCHANGE_KEY_RING (the agency's key ring file, to open details).
// The routes and bodies are those of openapi/exchange.swagger.json.
import { readFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { Decrypter, Encrypter } from "age-encryption";

const env = process.env;

// fetch takes a client certificate through an undici Agent. Node bundles
// undici without exporting it: use the npm package undici when installed,
// else the class of node's own global dispatcher.
async function undiciAgent() {
  try {
    return (await import("undici")).Agent;
  } catch {
    await fetch("data:,"); // makes node load its undici
    return globalThis[Symbol.for("undici.globalDispatcher.1")].constructor;
  }
}
const Agent = await undiciAgent();
const dispatcher = new Agent({
  connect: {
    cert: await readFile(env.EXCHANGE_CERT),
    key: await readFile(env.EXCHANGE_KEY),
    ca: await readFile(env.EXCHANGE_CA),
  },
});

// call sends a request and returns the JSON answer; an error answer is a
// google.rpc.Status, thrown with its code and message.
async function call(method, path, body) {
  const resp = await fetch(env.EXCHANGE_URL + path, {
    method,
    dispatcher,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await resp.json();
  if (!resp.ok) {
    const err = new Error(`${method} ${path}: ${JSON.stringify(answer)}`);
    err.status = answer;
    throw err;
  }
  return answer;
}

// recipientOf returns an agency's current public key from the directory.
async function recipientOf(agency) {
  const { agency: a } = await call("GET", `/v1/${agency}`);
  if (!a.encryptionKey?.recipient) throw new Error(`${agency} has registered no key`);
  return a.encryptionKey.recipient;
}

// ReferralDetails in the protobuf binary encoding (referral.proto): name 1,
// guardian_contact 2, birth_year 3, case_notes 4.
const utf8 = new TextEncoder();
function varint(n) {
  const out = [];
  for (; n > 0x7f; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return out;
}
function encodeDetails(d) {
  const bytes = [];
  for (const [field, value] of [[1, d.name], [2, d.guardianContact], [4, d.caseNotes]]) {
    if (!value) continue;
    const b = utf8.encode(value);
    bytes.push((field << 3) | 2, ...varint(b.length), ...b);
  }
  if (d.birthYear) bytes.push((3 << 3) | 0, ...varint(d.birthYear));
  return Uint8Array.from(bytes);
}
function decodeDetails(b) {
  const d = {};
  const names = { 1: "name", 2: "guardianContact", 3: "birthYear", 4: "caseNotes" };
  let at = 0;
  const readVarint = () => {
    let n = 0;
    for (let shift = 1; ; shift *= 128) {
      const byte = b[at++];
      n += (byte & 0x7f) * shift;
      if (byte < 0x80) return n;
    }
  };
  while (at < b.length) {
    const key = readVarint();
    const field = names[key >> 3];
    if ((key & 7) === 0) d[field] = readVarint();
    else {
      const n = readVarint();
      d[field] = new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(at, at + n));
      at += n;
    }
  }
  return d;
}

// seal builds the envelope of docs/sealing.md and encrypts it to the
// receiver's and the sender's keys.
async function seal(details, binding, recipients) {
  const parts = [utf8.encode("xchgseal"), Uint8Array.of(1)];
  for (const s of [binding.requestId, binding.sender, binding.receiver]) {
    const b = utf8.encode(s);
    parts.push(Uint8Array.of(b.length >> 8, b.length & 0xff), b);
  }
  const n = new Uint8Array(4);
  new DataView(n.buffer).setUint32(0, details.length);
  parts.push(n, details);
  const envelope = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  parts.reduce((at, p) => (envelope.set(p, at), at + p.length), 0);
  const encrypter = new Encrypter();
  for (const r of recipients) encrypter.addRecipient(r);
  return encrypter.encrypt(envelope);
}

// open decrypts a referral's sealed details with the key ring and checks
// they were sealed for this very referral.
async function open(referral) {
  const decrypter = new Decrypter();
  for (const line of (await readFile(env.EXCHANGE_KEY_RING, "utf8")).split("\n")) {
    if (line.startsWith("AGE-SECRET-KEY-")) decrypter.addIdentity(line.trim());
  }
  const envelope = await decrypter.decrypt(Buffer.from(referral.sealedDetails, "base64"));
  let at = 0;
  const take = (n) => {
    if (at + n > envelope.length) throw new Error("envelope is cut short");
    at += n;
    return envelope.subarray(at - n, at);
  };
  const uint = (n) => take(n).reduce((value, byte) => value * 256 + byte, 0);
  const text = (b) => new TextDecoder("utf-8", { fatal: true }).decode(b);
  if (text(take(8)) !== "xchgseal" || uint(1) !== 1) throw new Error("not a version 1 envelope");
  const binding = [text(take(uint(2))), text(take(uint(2))), text(take(uint(2)))];
  const details = take(uint(4));
  if (at !== envelope.length) throw new Error("bytes after the details");
  if (binding.join("\n") !== [referral.requestId, referral.sender, referral.receiver].join("\n")) {
    throw new Error(`sealed for another referral: ${binding}`);
  }
  return decodeDetails(details);
}

const [command, ...args] = process.argv.slice(2);
let out;
if (command === "send") {
  const referral = JSON.parse(await readFile(args[0], "utf8"));
  const details = encodeDetails(JSON.parse(await readFile(args[1], "utf8")));
  const sender = `agencies/${env.EXCHANGE_AGENCY}`;
  const requestId = randomUUID(); // keep it to retry safely after an error
  const sealed = await seal(details, { requestId, sender, receiver: referral.receiver },
    [await recipientOf(referral.receiver), await recipientOf(sender)]);
  referral.sealedDetails = Buffer.from(sealed).toString("base64");
  out = (await call("POST", "/v1/referrals", { referral, requestId })).referral;
} else if (command === "follow") {
  const [name, state, seconds = "30"] = args;
  const deadline = Date.now() + Number(seconds) * 1000;
  for (;;) {
    out = (await call("GET", `/v1/${name}`)).referral;
    if (out.state === state) break;
    if (Date.now() > deadline) {
      console.error(`${name} is still ${out.state}`);
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
} else if (command === "open") {
  out = await open((await call("GET", `/v1/${args[0]}`)).referral);
} else {
  console.error("usage: node referral.mjs send|follow|open ...");
  process.exit(2);
}
console.log(JSON.stringify(out, null, 1));
