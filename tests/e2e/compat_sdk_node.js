// Driver of tests/e2e/test_compat_sdks.py: the unmodified Node.js SDKs of Segment
// (@segment/analytics-node) and PostHog (posthog-node), pinned in scripts/node-sdks.sh, pointed
// at an EventOps collector by their host setting only. Sends one call of each kind with ids the
// test chose, flushes, and prints one JSON line: {"segment": [ids], "posthog": [ids],
// "errors": [texts]}.
//
// usage: node compat_sdk_node.js BASE_URL WRITE_KEY STAMP   (NODE_PATH: .node-sdks/node_modules)
'use strict';

const { Analytics } = require('@segment/analytics-node');
const { PostHog } = require('posthog-node');

async function main() {
  const [base, writeKey, stamp] = process.argv.slice(2);
  const errors = [];
  const id = (kind) => `node-${stamp}-${kind}`;

  const segment = new Analytics({ writeKey, host: base, flushAt: 20, maxRetries: 3 });
  segment.on('error', (e) => errors.push('segment: ' + (e && (e.reason || e.message || e.code))));
  const user = `node-user-${stamp}`;
  segment.track({ userId: user, event: 'Order Completed', properties: { total: 12.5 },
                  messageId: id('track') });
  segment.identify({ userId: user, traits: { plan: 'pro', seats: 3 }, messageId: id('identify') });
  segment.page({ anonymousId: `node-anon-${stamp}`, category: 'Docs', name: 'Install',
                 properties: { url: 'https://example.com/docs' }, messageId: id('page') });
  segment.screen({ userId: user, name: 'Cart', messageId: id('screen') });
  segment.group({ userId: user, groupId: `node-group-${stamp}`, traits: { size: 40 },
                  messageId: id('group') });
  segment.alias({ userId: user, previousId: `node-anon-${stamp}`, messageId: id('alias') });
  await segment.closeAndFlush({ timeout: 20000 });

  const posthog = new PostHog(writeKey, { host: base, flushAt: 20, flushInterval: 0 });
  posthog.on('error', (e) => errors.push('posthog: ' + (e && e.message)));
  const ph = `node-ph-${stamp}`;
  posthog.capture({ distinctId: ph, event: 'signup', properties: { plan: 'free' },
                    uuid: phUuid(stamp, 1) });
  posthog.identify({ distinctId: ph, properties: { email: 'n@example.com' } });
  posthog.alias({ distinctId: ph, alias: `node-ph-anon-${stamp}` });
  posthog.groupIdentify({ groupType: 'company', groupKey: `node-co-${stamp}`,
                          properties: { name: 'Acme' }, distinctId: ph });
  await posthog.shutdown(20000);

  process.stdout.write(JSON.stringify({
    segment: ['track', 'identify', 'page', 'screen', 'group', 'alias'].map(id),
    posthog: [phUuid(stamp, 1)],
    errors,
  }) + '\n');
}

// A UUID of the test's own (PostHog SDKs take uuids): stamp is 12 hex digits.
function phUuid(stamp, n) {
  return `0190a5b6-${stamp.slice(0, 4)}-7${stamp.slice(4, 7)}-8${stamp.slice(7, 10)}-` +
         `${stamp.slice(10, 12)}${String(n).padStart(10, '0')}`;
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ fatal: String(e && e.stack || e) }) + '\n');
  process.exit(1);
});
