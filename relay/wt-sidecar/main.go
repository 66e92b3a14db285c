// wt-sidecar terminates WebTransport over HTTP/3 (QUIC, what browsers speak) for the ScanRelay relay.
//
// The relay starts it, writes one JSON config line to its stdin (never argv: the per-start secret must not
// show in `ps`), and reads JSON event lines from its stdout. For every CONNECT the sidecar:
//
//	browser ── QUIC/HTTP3 CONNECT /v1/browser (Origin) ──▶ sidecar: Origin allowlist (403 before any accept)
//	sidecar ── loopback TCP: OPEN{secret, path, origin, ip} ──▶ relay: hooks.admit (caps, draining) → ADMIT{status}
//	status != 200 → HTTP status to the browser, no session.  200 → Upgrade, accept ONE bidi stream
//	stream bytes ⇄ DATA frames; relay CLOSE{code,reason} → session close; FIN → stream FIN
//
// The sidecar never parses protocol frames: the relay's own StreamFrameReader enforces frame caps, so every
// limit the relay applies to WebSocket applies here. Local frames: [type u8][len u32 BE][payload].
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

const (
	frameOpen   = 1 // sidecar → relay: JSON openRequest
	frameAdmit  = 2 // relay → sidecar: JSON {"status": n}
	frameStream = 3 // sidecar → relay: the session's bidi stream is open
	frameData   = 4 // both ways: raw stream bytes
	frameFin    = 5 // relay → sidecar: FIN the stream (after the last DATA)
	frameClose  = 6 // both ways: u32 code + UTF-8 reason: the session is closed
	maxLocal    = 16 << 20
	// lingerAfterClose keeps the CONNECT handler alive after a session close so the peer reads the code.
	lingerAfterClose = 500 * time.Millisecond
)

type config struct {
	Listen         string   `json:"listen"`
	Relay          string   `json:"relay"`
	Secret         string   `json:"secret"`
	Origins        []string `json:"origins"`
	Cert           string   `json:"cert"`
	Key            string   `json:"key"`
	Paths          []string `json:"paths"`
	AdmitTimeoutMs int      `json:"admitTimeoutMs"`
}

type openRequest struct {
	Secret string `json:"secret"`
	Path   string `json:"path"`
	Origin string `json:"origin"`
	Peer   string `json:"peer"`
}

func emit(event map[string]any) {
	b, _ := json.Marshal(event)
	fmt.Println(string(b))
}

func fail(code, msg string) {
	emit(map[string]any{"event": "fatal", "code": code, "message": msg})
	os.Exit(2)
}

// devCertificate makes the short-lived ECDSA P-256 certificate Chromium accepts via serverCertificateHashes
// (the W3C rule: valid now, for at most 14 days). Used only when the relay passes no certificate.
func devCertificate() (tls.Certificate, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail("dev_cert", err.Error())
	}
	now := time.Now().Add(-time.Minute)
	tmpl := x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             now,
		NotAfter:              now.Add(13 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		fail("dev_cert", err.Error())
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, base64.StdEncoding.EncodeToString(sum[:])
}

func writeFrame(w io.Writer, mu *sync.Mutex, typ byte, payload []byte) error {
	mu.Lock()
	defer mu.Unlock()
	head := make([]byte, 5, 5+len(payload))
	head[0] = typ
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	_, err := w.Write(append(head, payload...))
	return err
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > maxLocal {
		return 0, nil, errors.New("local frame too large")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return head[0], p, nil
}

func closePayload(code uint32, reason string) []byte {
	p := make([]byte, 4, 4+len(reason))
	binary.BigEndian.PutUint32(p, code)
	return append(p, reason...)
}

func main() {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		fail("config", "expected one JSON config line on stdin")
	}
	var cfg config
	if err := json.Unmarshal(line, &cfg); err != nil {
		fail("config", "config line is not JSON: "+err.Error())
	}
	if cfg.AdmitTimeoutMs <= 0 {
		cfg.AdmitTimeoutMs = 5000
	}
	origins := map[string]bool{}
	for _, o := range cfg.Origins {
		origins[strings.ToLower(o)] = true
	}

	var cert tls.Certificate
	certHash := ""
	if cfg.Cert != "" {
		cert, err = tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			fail("cert", "cannot load the TLS certificate/key: "+err.Error())
		}
	} else {
		cert, certHash = devCertificate()
	}

	mux := http.NewServeMux()
	wt := &webtransport.Server{
		H3: &http3.Server{
			Handler:   mux,
			TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}),
			QUICConfig: &quic.Config{
				// One CONNECT stream plus one WebTransport stream per session; a flood of further
				// bidi streams is held at the QUIC flow-control layer, not queued in memory.
				MaxIncomingStreams:    4,
				MaxIncomingUniStreams: 8, // HTTP/3 control + QPACK streams
				EnableDatagrams:       true,
				MaxIdleTimeout:        60 * time.Second,
				KeepAlivePeriod:       20 * time.Second,
			},
		},
		// Origin is checked in the handler (against the relay's allowlist) before Upgrade.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	webtransport.ConfigureHTTP3Server(wt.H3)

	for _, path := range cfg.Paths {
		p := path
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { handle(&cfg, origins, wt, p, w, r) })
	}

	udp, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		fail("listen", "cannot bind UDP "+cfg.Listen+": "+err.Error())
	}
	emit(map[string]any{"event": "listening", "addr": udp.LocalAddr().String(), "certHash": certHash})
	// The relay closing our stdin (or dying) ends the sidecar: no orphan keeps the UDP port.
	go func() {
		_, _ = io.Copy(io.Discard, in)
		wt.Close()
		os.Exit(0)
	}()
	if err := wt.Serve(udp); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fail("serve", err.Error())
	}
}

func handle(cfg *config, origins map[string]bool, wt *webtransport.Server, path string, w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	// Browsers: refuse a foreign Origin before the session exists (the relay checks again on admit).
	if path == "/v1/browser" && !origins[strings.ToLower(origin)] {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	local, err := net.DialTimeout("tcp", cfg.Relay, 2*time.Second)
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var mu sync.Mutex
	open, _ := json.Marshal(openRequest{Secret: cfg.Secret, Path: path, Origin: origin, Peer: r.RemoteAddr})
	if writeFrame(local, &mu, frameOpen, open) != nil {
		local.Close()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	rd := bufio.NewReaderSize(local, 64<<10)
	_ = local.SetReadDeadline(time.Now().Add(time.Duration(cfg.AdmitTimeoutMs) * time.Millisecond))
	typ, payload, err := readFrame(rd)
	var admit struct {
		Status int `json:"status"`
	}
	if err != nil || typ != frameAdmit || json.Unmarshal(payload, &admit) != nil {
		local.Close()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if admit.Status != http.StatusOK {
		local.Close()
		w.WriteHeader(admit.Status)
		return
	}
	_ = local.SetReadDeadline(time.Time{})
	sess, err := wt.Upgrade(w, r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upgrade failed:", err)
		local.Close()
		return
	}
	bridge(sess, local, rd, &mu)
}

// bridge carries one session: its first bidi stream ⇄ the relay's local connection.
func bridge(sess *webtransport.Session, local net.Conn, rd *bufio.Reader, mu *sync.Mutex) {
	defer local.Close()
	done := make(chan struct{})
	defer close(done)
	// Session end (peer close, idle timeout) → CLOSE to the relay, which reports the code to the core.
	go func() {
		select {
		case <-sess.Context().Done():
		case <-done:
			return
		}
		code, reason := uint32(1006), ""
		var se *webtransport.SessionError
		if errors.As(context.Cause(sess.Context()), &se) {
			code, reason = uint32(se.ErrorCode), se.Message
		}
		_ = writeFrame(local, mu, frameClose, closePayload(code, reason))
		time.AfterFunc(time.Second, func() { local.Close() })
	}()

	streamCh := make(chan *webtransport.Stream, 1)
	go func() {
		str, err := sess.AcceptStream(sess.Context())
		if err != nil {
			return
		}
		streamCh <- str
		// Any further stream is refused at once (one stream per session), so a flood costs nothing.
		for {
			extra, err := sess.AcceptStream(sess.Context())
			if err != nil {
				return
			}
			extra.CancelRead(0)
			extra.CancelWrite(0)
		}
	}()
	go func() {
		for {
			uni, err := sess.AcceptUniStream(sess.Context())
			if err != nil {
				return
			}
			uni.CancelRead(0)
		}
	}()

	var str *webtransport.Stream
	relayClosed := make(chan struct{})
	// Until the stream opens, watch the local side: the relay may close a session that never opens one.
	go func() {
		select {
		case str = <-streamCh:
		case <-sess.Context().Done():
		}
		close(relayClosed)
	}()
	<-relayClosed
	if str == nil {
		return
	}
	if writeFrame(local, mu, frameStream, nil) != nil {
		_ = sess.CloseWithError(1006, "")
		return
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := str.Read(buf)
			if n > 0 && writeFrame(local, mu, frameData, buf[:n]) != nil {
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		typ, p, err := readFrame(rd)
		if err != nil {
			_ = sess.CloseWithError(1006, "")
			return
		}
		switch typ {
		case frameData:
			if _, err := str.Write(p); err != nil {
				_ = sess.CloseWithError(1006, "")
				return
			}
		case frameFin:
			_ = str.Close()
		case frameClose:
			if len(p) < 4 {
				_ = sess.CloseWithError(1006, "")
				return
			}
			_ = sess.CloseWithError(webtransport.SessionErrorCode(binary.BigEndian.Uint32(p)), string(p[4:]))
			// Returning ends the CONNECT request; give the close capsule time to reach the peer first.
			time.Sleep(lingerAfterClose)
			return
		}
	}
}
