// The nginx + njs peers of the benchmarks: the work Atoll does on the hot path
// of a signed device request, minus storage (no nonce memory, no rate limit, no
// JSON parsing, no database). `check` parses the five x-atoll-* headers, checks
// their shape and the timestamp window, rebuilds the canonical string of
// contracts/signing.json (hashing the body with crypto.createHash('sha256')) and
// verifies the HMAC-SHA256 with crypto.createHmac. `verify` (bench/device-api.sh,
// bench/delivery) then answers 200 with a small JSON body; `proxy`
// (bench/gateway) checks a gateway call, signed over `/gw/v1/<operation-type>`,
// and forwards it to the `/_upstream` location. The app key and secret come
// from nginx variables set in the config.

import crypto from 'crypto';

const WINDOW_SECS = 300;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const DEVICE_ID = /^[\x21-\x7e]{1,128}$/;
const DIGITS = /^-?[0-9]{1,18}$/;

function answer(r, status, body) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(body));
}

// The refusal of a request, or null when its signature holds over `signedPath`
// (the request's own path when not given).
function check(r, signedPath) {
    const headers = r.headersIn;
    const appKey = headers['x-atoll-app-key'];
    const deviceId = headers['x-atoll-device-id'];
    const timestampText = headers['x-atoll-timestamp'];
    const nonce = headers['x-atoll-nonce'];
    const signature = headers['x-atoll-signature'];
    if (!appKey || !deviceId || !timestampText || !nonce || !signature) {
        return { code: 'missing_signature' };
    }
    if (!DEVICE_ID.test(deviceId) || !NONCE.test(nonce) || !DIGITS.test(timestampText)) {
        return { code: 'missing_signature' };
    }
    if (appKey !== r.variables.atoll_app_key) {
        return { code: 'unknown_app' };
    }
    const timestamp = parseInt(timestampText, 10);
    const now = Math.floor(Date.now() / 1000);
    if (Math.abs(timestamp - now) > WINDOW_SECS) {
        return { code: 'timestamp_skew' };
    }

    // The raw path and query as sent (r.uri would be percent-decoded).
    const target = r.variables.request_uri;
    const mark = target.indexOf('?');
    const path = signedPath || (mark < 0 ? target : target.slice(0, mark));
    const query = mark < 0 ? '' : target.slice(mark + 1).split('&')
        .filter((pair) => pair.length > 0).sort().join('&');
    const body = r.requestBuffer || '';
    const bodyHash = crypto.createHash('sha256').update(body).digest('hex');
    const canonical = [
        'ATOLL-HMAC-SHA256', appKey, deviceId, r.method.toUpperCase(), path, query,
        String(timestamp), nonce, bodyHash,
    ].join('\n');
    const expected = crypto.createHmac('sha256', r.variables.atoll_app_secret)
        .update(canonical).digest('hex');
    // A plain comparison: njs 0.7 has no constant-time compare.
    if (expected !== signature.toLowerCase()) {
        return { code: 'invalid_signature' };
    }
    return null;
}

function verify(r) {
    const refusal = check(r);
    if (refusal) {
        return answer(r, 401, refusal);
    }
    return answer(r, 200, {
        device_id: r.headersIn['x-atoll-device-id'], verified: true, server_time: Date.now(),
    });
}

function proxy(r) {
    const operation = r.headersIn['operation-type'] || '';
    const refusal = check(r, '/gw/v1/' + operation);
    if (refusal) {
        return answer(r, 401, refusal);
    }
    r.subrequest('/_upstream', { method: r.method, body: r.requestText })
        .then((reply) => {
            r.headersOut['Content-Type'] = 'application/json';
            r.return(reply.status, reply.responseText);
        })
        .catch(() => answer(r, 502, { code: 'backend_unavailable' }));
}

export default { verify, proxy };
