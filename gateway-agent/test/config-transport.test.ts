/** Transport settings (SCANRELAY_GATEWAY_TRANSPORT and the WebTransport ones) are validated at start-up. */
import { describe, expect, it } from 'vitest';
import { type RawSettings, validateConfig } from '../src/config.js';

const base: RawSettings = {
  SCANRELAY_GATEWAY_STATE_DIR: '/tmp/gw-config-test',
  SCANRELAY_GATEWAY_MANAGE_JWKS: '/tmp/jwks.json',
  SCANRELAY_GATEWAY_MANAGE_ISSUER: 'https://manage.example',
};
const problems = (extra: RawSettings): string => {
  try {
    validateConfig({ ...base, ...extra });
  } catch (err) {
    return (err as Error).message;
  }
  return '';
};

describe('transport settings', () => {
  it('default websocket; auto and webtransport take https URLs (endpoint appended) and a hex pin with or without colons', () => {
    expect(validateConfig(base)).toMatchObject({ transport: 'websocket', webTransportUrls: [] });
    const pin = `${'AB:'.repeat(31)}AB`;
    expect(
      validateConfig({
        ...base,
        SCANRELAY_GATEWAY_TRANSPORT: 'auto',
        SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: 'https://relay-a:4433, https://relay-b:4433/base/',
        SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: pin,
      }),
    ).toMatchObject({
      transport: 'auto',
      webTransportUrls: ['https://relay-a:4433/v1/gateway', 'https://relay-b:4433/base/v1/gateway'],
      webTransportCertSha256: 'ab'.repeat(32),
    });
  });

  it('names each bad setting and the fix', () => {
    expect(problems({ SCANRELAY_GATEWAY_TRANSPORT: 'quic' })).toContain(
      'SCANRELAY_GATEWAY_TRANSPORT: "quic" must be websocket, webtransport or auto',
    );
    expect(problems({ SCANRELAY_GATEWAY_TRANSPORT: 'webtransport' })).toMatch(
      /SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: is required with SCANRELAY_GATEWAY_TRANSPORT=webtransport.*https:\/\/relay\.example\.org:4433/,
    );
    expect(
      problems({ SCANRELAY_GATEWAY_TRANSPORT: 'auto', SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: 'http://relay:4433' }),
    ).toContain('must be an https URL (WebTransport always runs over TLS)');
    expect(
      problems({ SCANRELAY_GATEWAY_TRANSPORT: 'auto', SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: 'https://relay:4433/?t=x' }),
    ).toContain('must not contain credentials, a query or a fragment');
    expect(
      problems({
        SCANRELAY_GATEWAY_TRANSPORT: 'auto',
        SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: 'https://relay:4433',
        SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: 'abc',
      }),
    ).toContain('SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: must be the 64 hex digits');
    const stray = problems({
      SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: 'https://relay:4433',
      SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: 'ab'.repeat(32),
    });
    expect(stray).toContain('SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: is set but SCANRELAY_GATEWAY_TRANSPORT is websocket');
    expect(stray).toContain('SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: is set but SCANRELAY_GATEWAY_TRANSPORT');
  });
});
