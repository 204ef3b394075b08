package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
)

// proofOptions are the flags of proof.
type proofOptions struct {
	key   string
	htm   string
	htu   string
	token string
	nonce string
	jkt   bool
}

// proofFlags binds the flags of proof to o.
func proofFlags(o *proofOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("proof", flag.ContinueOnError)
	fs.StringVar(&o.key, "key", "", "the client's PEM private key file (required): P-256/384/521, RSA (PS256) or Ed25519")
	fs.StringVar(&o.htm, "htm", "GET", "the request method the proof is for")
	fs.StringVar(&o.htu, "htu", "", "the URL the request goes to, as the client addresses it (required; query and fragment are dropped)")
	fs.StringVar(&o.token, "token", "", "the access token sent with the proof (its hash becomes ath); omit for a token request to /token")
	fs.StringVar(&o.nonce, "nonce", "", "the server's last DPoP-Nonce, if it asked for one")
	fs.BoolVar(&o.jkt, "jkt", false, "print the key's RFC 7638 thumbprint (the cnf.jkt of tokens bound to it) instead of a proof")
	return fs
}

// runProof prints one DPoP proof (RFC 9449 §4) and a newline, for the DPoP
// header of one request: a fresh jti each time, iat now.
func runProof(args []string, stdout, stderr io.Writer, now time.Time) error {
	var o proofOptions
	fs := proofFlags(&o)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("proof: unexpected argument %q", fs.Arg(0))
	case o.key == "":
		return errors.New("proof: -key is required")
	case o.htu == "" && !o.jkt:
		return errors.New("proof: -htu is required")
	}
	signer, err := readPrivateKey(o.key)
	if err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	c, err := dpop.NewClient(signer)
	if err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	if o.jkt {
		_, err = fmt.Fprintln(stdout, c.JKT())
		return err
	}
	c.Now = func() time.Time { return now }
	p, err := c.Proof(o.htm, o.htu, o.token, o.nonce)
	if err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	_, err = fmt.Fprintln(stdout, p)
	return err
}
