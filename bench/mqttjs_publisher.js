// A QoS 1 load publisher in Node.js with MQTT.js (installed with Node-RED by bench/nodered.py), so the
// benchmark can offer far more messages per second than a paho publisher in Python.
//
//   node bench/mqttjs_publisher.js '<json settings>'
//
// Settings: port, prefix, devices (topic suffixes), values, seconds, rate (readings/s for this process,
// or null: as fast as the broker acknowledges), window (unacknowledged messages at most), client_id.
// Message number K carries {"s0": K.000, "s1": K.001, ...}, as bench/load.py's payload().
// Talks to the parent over stdio: prints "ready" once connected, waits for "go" on stdin, prints one
// JSON line with its counts at the end (its own CPU included), then exits.
"use strict";

const mqtt = require("mqtt");
const readline = require("readline");

const settings = JSON.parse(process.argv[2]);
const topics = settings.devices.map((dev) => `${settings.prefix}/${dev}`);

function payload(seq, values) {
  const parts = [];
  for (let j = 0; j < values; j++) parts.push(`"s${j}":${seq}.${String(j).padStart(3, "0")}`);
  return Buffer.from(`{${parts.join(",")}}`);
}

const client = mqtt.connect({
  host: "127.0.0.1",
  port: settings.port,
  clientId: settings.client_id,
  clean: true,
  protocolVersion: 4,
  reconnectPeriod: 0,
  keepalive: 60,
});

let sent = 0;
let acked = 0;
let firstAck = 0;
let lastAck = 0;
let wake = null;

function onAck(err) {
  if (err) {
    process.stdout.write(JSON.stringify({ error: String(err) }) + "\n");
    process.exit(1);
  }
  acked += 1;
  lastAck = Date.now() / 1000;
  if (acked === 1) firstAck = lastAck;
  if (wake && sent - acked < settings.window / 2) {
    const w = wake;
    wake = null;
    w();
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function publish() {
  const cpu0 = process.cpuUsage();
  const period = settings.rate ? (topics.length * settings.values) / settings.rate : 0;
  const started = Date.now() / 1000;
  let nextRound = performance.now() / 1000;
  const deadline = nextRound + settings.seconds;
  let seq = 0;
  while (performance.now() / 1000 < deadline) {
    const body = payload(seq, settings.values);
    for (const topic of topics) {
      if (sent - acked >= settings.window) await new Promise((resolve) => { wake = resolve; });
      client.publish(topic, body, { qos: 1 }, onAck);
      sent += 1;
    }
    seq += 1;
    if (period) {
      nextRound += period;
      const delay = nextRound - performance.now() / 1000;
      if (delay > 0) await sleep(delay * 1000);
      else if (seq % 16 === 0) await sleep(0); // let acknowledgements in when behind
    } else if (seq % 16 === 0) {
      await sleep(0);
    }
  }
  const lastPublish = Date.now() / 1000;
  const until = Date.now() + 120000;
  while (acked < sent && Date.now() < until) await sleep(5);
  const cpu = process.cpuUsage(cpu0);
  const result = {
    messages: sent, acked, rounds: seq, first_publish: started, last_publish: lastPublish,
    first_ack: firstAck, last_ack: lastAck, cpu_s: (cpu.user + cpu.system) / 1e6,
  };
  client.end(false, () => {
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
  });
}

client.on("error", (err) => {
  process.stdout.write(JSON.stringify({ error: String(err) }) + "\n");
  process.exit(1);
});
client.once("connect", () => {
  process.stdout.write("ready\n");
  const lines = readline.createInterface({ input: process.stdin });
  lines.once("line", (line) => {
    if (line.trim() === "go") publish();
    else process.exit(0);
  });
});
