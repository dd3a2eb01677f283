// Sends CloudHSM record text to a HEC endpoint with Splunk's own Node logger (splunk-logging),
// the way a Node application would. Input (stdin, JSON):
//   {"url": "...", "token": "...", "batch": 10, "format": "object"|"string",
//    "records": [{"message": "...", "host": "...", "source": "..."}]}
// Output (stdout, JSON): {"responses": [<HEC reply bodies>], "errors": [<messages>]}
"use strict";
const SplunkLogger = require("splunk-logging").Logger;

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const job = JSON.parse(input);
  const logger = new SplunkLogger({
    token: job.token,
    url: job.url,
    maxBatchCount: job.batch || 1,
    maxRetries: 0,
  });
  const responses = [];
  const errors = [];
  logger.error = (err) => { errors.push(String(err && err.message ? err.message : err)); };
  if (job.format === "string") {
    // Send the record text itself as the HEC event (a string), not splunk-logging's {message, severity}.
    logger.eventFormatter = (message) => message;
  }
  let pending = 0;
  const done = () => {
    if (--pending === 0) {
      process.stdout.write(JSON.stringify({ responses, errors }));
    }
  };
  const callback = (err, resp, body) => {
    if (err) { errors.push(String(err.message || err)); }
    else { responses.push(typeof body === "string" ? JSON.parse(body) : body); }
    done();
  };
  const batch = job.batch || 1;
  job.records.forEach((record, index) => {
    const flushes = (index + 1) % batch === 0;
    if (flushes) { pending += 1; }
    logger.send({ message: record.message, metadata: { host: record.host, source: record.source, sourcetype: "aws:cloudhsm:audit:text" } }, flushes ? callback : undefined);
  });
  if (job.records.length % batch !== 0) {
    pending += 1;
    logger.flush(callback);
  }
  if (pending === 0) { process.stdout.write(JSON.stringify({ responses, errors })); }
});
