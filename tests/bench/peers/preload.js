// preload.js — `node --require preload.js`: point Node's DNS at the bench
// world's dnsmasq (MXSIFT_BENCH_DNS=HOST:PORT) before a peer verifier loads.
//
// dns.setServers() covers dns.resolve*() (MX lookups).  Connections by host
// name go through dns.lookup(), i.e. getaddrinfo() and /etc/hosts, which
// know nothing of the .test zone: lookup is replaced by an A query to the
// same server, keeping lookup's calling conventions (options object or
// family number; { all: true } returns a list, as net's autoSelectFamily
// asks for).
'use strict';
const dns = require('dns');

const server = process.env.MXSIFT_BENCH_DNS;
if (!server) {
  throw new Error('preload.js: MXSIFT_BENCH_DNS=HOST:PORT is not set');
}
dns.setServers([server]);
dns.promises.setServers([server]);

dns.lookup = function benchLookup(host, options, callback) {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  } else if (typeof options === 'number') {
    options = { family: options };
  }
  const all = options && options.all;
  dns.resolve4(host, (err, addrs) => {
    if (err || addrs.length === 0) {
      callback(err || new Error(`no A record for ${host}`));
    } else if (all) {
      callback(null, addrs.map((address) => ({ address, family: 4 })));
    } else {
      callback(null, addrs[0], 4);
    }
  });
};
