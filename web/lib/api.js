// The HTTP API client (docs/openapi.yaml): one request, errors in words.
//
// `request()` sends one JSON request and turns every failure into an ApiError whose
// message is a sentence for people (`words()`); the page's `api()` adds the session
// (bearer token, refresh after a 401). No DOM, no state: `node --test` checks it with a
// stand-in `fetch`.

export class ApiError extends Error {
  constructor(code, message, status = 0, field = undefined) {
    super(message);
    this.code = code;
    this.status = status;
    this.field = field;
  }
}

export const FRIENDLY = {
  invalid_credentials: 'Wrong user name or password.',
  user_name_taken: 'That user name is already taken. Pick another one.',
  rate_limited: 'Too many requests at once. Wait a moment and try again.',
  unavailable: 'The server is busy right now. Try again in a moment.',
  internal: 'Something went wrong on the server. Try again.',
  not_found: 'That chat or user does not exist (or you are not a member).',
  forbidden: 'You are not allowed to do that.',
  group_full: 'The group is full (100 members at most).',
  already_member: 'That person is already in the group.',
  payload_too_large: 'That is too long to send.',
  refresh_token_reused: 'Your session was ended for safety. Please log in again.',
  session_revoked: 'You were logged out everywhere. Please log in again.',
  invalid_refresh_token: 'Your session has ended. Please log in again.',
  network: 'Cannot reach the chat server. Check your connection.',
  blocked: 'This person has blocked you: they do not get your messages.',
  you_blocked: 'You blocked this person. Unblock them to send.',
  too_many_blocks: 'You block 1,000 people already. Unblock someone first.',
};

/** A sentence for people from an error body `{error: {code, message, field}}`. */
export function words(err) {
  if (!err) return 'Something went wrong.';
  const code = err.code;
  if (code === 'validation_failed' && err.message) {
    // The server's message names the field ("password: must be at least 8 characters").
    const m = String(err.message);
    const i = m.indexOf(': ');
    if (i > 0) {
      const field = m.slice(0, i).replace(/([A-Z])/g, ' $1').toLowerCase();
      return `${field.charAt(0).toUpperCase()}${field.slice(1)} ${m.slice(i + 2)}.`.replace(/\.\.$/, '.');
    }
    return m;
  }
  if (FRIENDLY[code]) return FRIENDLY[code];
  return err.message || 'Something went wrong.';
}

/** How long one request may take before it counts as a network failure. */
export const REQUEST_TIMEOUT_MS = 30000;

/**
 * One request: `fetchFn(baseUrl + path)` with a JSON body and an optional bearer token.
 * Resolves to the parsed body (null for 204); rejects with an ApiError (code `network`
 * when the server cannot be reached, else the server's code, `http_NNN` when the body
 * has none).
 */
export async function request(baseUrl, method, path, body, { token = null, fetchFn = globalThis.fetch, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetchFn(baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // A request the network or server never answers ends as an error the page shows
      // (and the outbox retries), instead of leaving it waiting for ever.
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch {
    throw new ApiError('network', FRIENDLY.network);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const e = (data && data.error) || { code: `http_${res.status}`, message: `The server answered ${res.status}.` };
    throw new ApiError(e.code, words(e), res.status, e.field);
  }
  return data;
}
