package registries

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Network is a private name service on 127.0.0.1: a real DNS server (UDP
// and TCP) that answers A 127.0.0.1 for registered names and NXDOMAIN for
// everything else, and a Resolver that asks only it. Clients built from
// Dialer or Transport therefore resolve "registry.test" to loopback and
// fail "anything.invalid" with a genuine *net.DNSError (IsNotFound),
// without a query leaving the machine.
type Network struct {
	// Resolver sends every query to this Network's server.
	Resolver *net.Resolver
	// Addr is the DNS server's 127.0.0.1:port.
	Addr string

	mu      sync.Mutex
	names   map[string][4]byte
	queries []string
}

// NewNetwork starts the DNS server; it stops when the test ends.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	return NewNetworkAt(t, "127.0.0.1:0")
}

// NewNetworkAt is NewNetwork listening on addr. A resolv.conf cannot name
// a port, so a program that reads one (containerd on the real test node)
// needs the server on port 53 of some loopback address, e.g.
// "127.53.x.y:53" (as root; each address of 127.0.0.0/8 is loopback).
func NewNetworkAt(t testing.TB, addr string) *Network {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		// The UDP port's TCP twin is taken; fall back to UDP only.
		ln = nil
	}
	n := &Network{Addr: pc.LocalAddr().String(), names: map[string][4]byte{}}
	n.Resolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			if ln == nil {
				network = "udp"
			}
			var d net.Dialer
			return d.DialContext(ctx, network, n.Addr)
		},
	}
	go n.serveUDP(pc)
	t.Cleanup(func() { pc.Close() })
	if ln != nil {
		go n.serveTCP(ln)
		t.Cleanup(func() { ln.Close() })
	}
	return n
}

// Add makes name resolve to 127.0.0.1.
func (n *Network) Add(name string) { n.AddAt(name, [4]byte{127, 0, 0, 1}) }

// AddAt makes name resolve to ip (a loopback address: nothing here may
// send traffic elsewhere), e.g. to serve a registry as "public.ecr.aws"
// on port 80 of an address of its own.
func (n *Network) AddAt(name string, ip [4]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.names[canonical(name)] = ip
}

// Queries returns the names asked so far (without the trailing dot).
func (n *Network) Queries() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.queries...)
}

// Dialer dials through this Network's resolver.
func (n *Network) Dialer() *net.Dialer {
	return &net.Dialer{Resolver: n.Resolver, Timeout: 5 * time.Second}
}

// Transport is an HTTP transport that resolves through this Network and
// trusts roots (nil: the system roots, which never include a test CA). It
// has no proxy, so nothing is sent to an HTTP_PROXY from the environment.
func (n *Network) Transport(roots *x509.CertPool) *http.Transport {
	return &http.Transport{
		DialContext:         n.Dialer().DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 16,
	}
}

func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

func (n *Network) answer(query []byte) []byte {
	var msg dnsmessage.Message
	if err := msg.Unpack(query); err != nil || len(msg.Questions) == 0 {
		return nil
	}
	q := msg.Questions[0]
	name := strings.ToLower(q.Name.String())
	n.mu.Lock()
	n.queries = append(n.queries, strings.TrimSuffix(name, "."))
	ip, known := n.names[name]
	n.mu.Unlock()

	resp := dnsmessage.Message{
		Header: dnsmessage.Header{
			ID: msg.ID, Response: true, Authoritative: true,
			RecursionDesired: msg.RecursionDesired, RecursionAvailable: true,
		},
		Questions: msg.Questions,
	}
	switch {
	case !known:
		resp.RCode = dnsmessage.RCodeNameError
	case q.Type == dnsmessage.TypeA:
		resp.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: ip},
		}}
	default:
		// Known name, no record of this type (AAAA): NOERROR, no answers.
	}
	b, err := resp.Pack()
	if err != nil {
		return nil
	}
	return b
}

func (n *Network) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		k, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := n.answer(buf[:k]); out != nil {
			pc.WriteTo(out, addr)
		}
	}
}

func (n *Network) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				var l uint16
				if err := binary.Read(c, binary.BigEndian, &l); err != nil {
					return
				}
				q := make([]byte, l)
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				out := n.answer(q)
				if out == nil {
					return
				}
				binary.Write(c, binary.BigEndian, uint16(len(out)))
				c.Write(out)
			}
		}()
	}
}
