// Package relay is the network between a sidecar and its token service in
// `make compare`: a TCP relay on 127.0.0.1 that delays every byte by half a
// round trip in each direction, as a link with that latency would.
//
// The delay is per byte, not per connection: a chunk read from one side is
// written to the other one half round trip after it was read, in order. So
// every request and response on a kept-alive connection pays the full round
// trip, as on a real network, and a new connection pays one more round trip
// for the TCP handshake its client did not wait for on loopback (its first
// bytes leave no sooner than one round trip after the accept). TLS, packet
// loss and bandwidth are not modelled.
package relay

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Relay forwards connections from its listener to a target address, each
// byte delayed by half of RTT in each direction.
type Relay struct {
	ln     net.Listener
	target string
	rtt    time.Duration

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// maxChunks bounds the chunks in flight per direction: at 32 KiB each, a
// few MiB per connection, far more than a token service's answers.
const (
	chunkSize = 32 << 10
	maxChunks = 128
)

// Listen starts a relay on addr (e.g. "127.0.0.1:0") to target with the
// round trip rtt (0 forwards at once). Close stops it.
func Listen(addr, target string, rtt time.Duration) (*Relay, error) {
	if rtt < 0 {
		return nil, errors.New("relay: negative round trip")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, target: target, rtt: rtt, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is where the relay listens.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// RTT is the round trip the relay adds.
func (r *Relay) RTT() time.Duration { return r.rtt }

// Close stops accepting, cuts every connection and waits for the relay's
// goroutines.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// track remembers c for Close; false when the relay is closing.
func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		r.wg.Add(1)
		go r.serve(c, time.Now())
	}
}

// serve relays one connection. The target is dialled at once: when it is
// down (the issuer killed), the client's connection is closed, as a
// refused connection on the real network would end its request.
func (r *Relay) serve(client net.Conn, accepted time.Time) {
	defer r.wg.Done()
	if !r.track(client) {
		client.Close()
		return
	}
	defer r.untrack(client)
	defer client.Close()
	server, err := net.DialTimeout("tcp", r.target, 5*time.Second)
	if err != nil {
		return
	}
	if !r.track(server) {
		server.Close()
		return
	}
	defer r.untrack(server)
	defer server.Close()

	half := r.rtt / 2
	var wg sync.WaitGroup
	wg.Add(2)
	// The client's first bytes would have waited for the SYN-ACK.
	go func() { defer wg.Done(); delayLine(server, client, half, accepted.Add(r.rtt)) }()
	go func() { defer wg.Done(); delayLine(client, server, half, accepted) }()
	wg.Wait()
}

// chunk is bytes read at one moment, due at another.
type chunk struct {
	b   []byte
	due time.Time
}

// delayLine copies src to dst, each chunk written no sooner than delay
// after it was read nor before notBefore+delay. At src's end it
// half-closes dst, so the other direction can finish; a write error
// closes src so the reader stops.
func delayLine(dst, src net.Conn, delay time.Duration, notBefore time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan chunk, maxChunks)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				due := time.Now()
				if due.Before(notBefore) {
					due = notBefore
				}
				select {
				case ch <- chunk{b: buf[:n], due: due.Add(delay)}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if wait := time.Until(c.due); wait > 0 {
			sleep(wait)
		}
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			cancel()
			for range ch { // let the reader end
			}
			return
		}
	}
	if tc, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	} else {
		dst.Close()
	}
}
