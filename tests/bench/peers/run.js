// run.js — run one npm verifier over an address list, the way its README
// shows, with at most MXSIFT_BENCH_PEER_CONCURRENCY (default 50) addresses
// in flight.  Prints one JSON object: { peer, n, valid, invalid, wrong }.
// "wrong": an "ok-*" address (a mailbox the sink accepts) not reported
// valid, or any other address reported valid.
//
// usage: node --require preload.js run.js deep-email-validator|email-existence FILE
'use strict';
const fs = require('fs');

const [peer, file] = process.argv.slice(2);
const sender = 'bench@mxsift.test';
const concurrency = Number(process.env.MXSIFT_BENCH_PEER_CONCURRENCY || 50);

// One address -> Promise<boolean> (true: the peer says it exists).
const verifiers = {
  'deep-email-validator': () => {
    const { validate } = require('deep-email-validator');
    // Typo and disposable-list checks are local table look-ups that would
    // only reject .test domains for reasons unrelated to SMTP: off, so
    // every address reaches the MX lookup and SMTP like mxsift's do.
    return (email) => validate({
      email, sender, validateRegex: true, validateMx: true,
      validateTypo: false, validateDisposable: false, validateSMTP: true,
    }).then((r) => r.valid);
  },
  'email-existence': () => {
    const check = require('email-existence');
    return (email) => new Promise((resolve) => {
      check(email, (err, exists) => resolve(Boolean(exists)), 5000, sender);
    });
  },
};

async function main() {
  if (!verifiers[peer] || !file) {
    console.error('usage: run.js deep-email-validator|email-existence FILE');
    process.exit(2);
  }
  const verify = verifiers[peer]();
  const list = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
  const out = { peer, n: list.length, valid: 0, invalid: 0, wrong: 0 };
  let next = 0;
  async function lane() {
    while (next < list.length) {
      const email = list[next++];
      const ok = await verify(email);
      out[ok ? 'valid' : 'invalid']++;
      if (ok !== email.startsWith('ok-')) out.wrong++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
