// Validate glTF/GLB files with the Khronos glTF validator (the npm package gltf-validator).
// Usage: node validate.cjs FILE...
// Prints one JSON object: {FILE: {validator, messages: [{severity, code, pointer, message}]}};
// severity 0 = error, 1 = warning, 2 = information, 3 = hint (the validator's numbering).
"use strict";
const fs = require("fs");
const validator = require("gltf-validator");

async function report(file) {
  const result = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
    uri: file, maxIssues: 0, writeTimestamp: false,
  });
  const messages = result.issues.messages.map((m) => ({
    severity: m.severity, code: m.code, pointer: m.pointer || "", message: m.message,
  }));
  return { validator: validator.version(), messages };
}

(async () => {
  const out = {};
  for (const file of process.argv.slice(2)) out[file] = await report(file);
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  console.error(String(err));
  process.exit(1);
});
