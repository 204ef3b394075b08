package main

import (
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// keyFiles is the repeatable -key flag of jwks.
type keyFiles []string

func (k *keyFiles) String() string {
	if k == nil {
		return ""
	}
	return strings.Join(*k, ",")
}

// Set adds one file.
func (k *keyFiles) Set(s string) error {
	*k = append(*k, s)
	return nil
}

// genkeyOptions are the flags of genkey.
type genkeyOptions struct {
	alg   string
	out   string
	force bool
}

// genkeyFlags binds the flags of genkey to o.
func genkeyFlags(o *genkeyOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("genkey", flag.ContinueOnError)
	fs.StringVar(&o.alg, "alg", "RS256", "RS256 (RSA 2048), ES256 (P-256) or EdDSA (Ed25519); also RS384, RS512, PS256, PS384, PS512, ES384, ES512")
	fs.StringVar(&o.out, "out", "", "write the key to this file, mode 0600 (default: stdout)")
	fs.BoolVar(&o.force, "force", false, "overwrite -out if it exists")
	return fs
}

// runGenkey writes a fresh PKCS#8 PEM private key.
func runGenkey(args []string, stdout, stderr io.Writer) error {
	var o genkeyOptions
	fs := genkeyFlags(&o)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("genkey: unexpected argument %q", fs.Arg(0))
	}
	if !slices.Contains(allAlgs(), o.alg) {
		return fmt.Errorf("genkey: -alg %q is not one of %s", o.alg, strings.Join(allAlgs(), ", "))
	}
	key, err := generateKey(o.alg)
	if err != nil {
		return fmt.Errorf("genkey: %w", err)
	}
	pemBytes, err := encodePrivateKey(key)
	if err != nil {
		return fmt.Errorf("genkey: %w", err)
	}
	if o.out == "" {
		_, err = stdout.Write(pemBytes)
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(o.out, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("genkey: %s exists; add -force to overwrite it", o.out)
	}
	if err != nil {
		return fmt.Errorf("genkey: %w", err)
	}
	// O_TRUNC keeps the old mode of an existing file; a private key is 0600.
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return fmt.Errorf("genkey: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		_ = f.Close()
		return fmt.Errorf("genkey: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("genkey: %w", err)
	}
	return nil
}

// jwksOptions are the flags of jwks.
type jwksOptions struct {
	keys keyFiles
	alg  string
}

// jwksFlags binds the flags of jwks to o.
func jwksFlags(o *jwksOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("jwks", flag.ContinueOnError)
	fs.Var(&o.keys, "key", "PEM private key file, repeatable (at least one)")
	fs.StringVar(&o.alg, "alg", "", "alg member of every key (default: from each key's type, as mint)")
	return fs
}

// runJWKS prints the public JWKS of the given private keys.
func runJWKS(args []string, stdout, stderr io.Writer) error {
	var o jwksOptions
	fs := jwksFlags(&o)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("jwks: unexpected argument %q", fs.Arg(0))
	}
	if len(o.keys) == 0 {
		return errors.New("jwks: at least one -key is required")
	}
	keys := make([]*signingKey, 0, len(o.keys))
	for _, path := range o.keys {
		s, err := readPrivateKey(path)
		if err != nil {
			return fmt.Errorf("jwks: %w", err)
		}
		k, err := newSigningKey(s, o.alg)
		if err != nil {
			return fmt.Errorf("jwks: %s: %w", path, err)
		}
		keys = append(keys, k)
	}
	set, err := publicJWKS(keys)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(set)
}

// pubkeyFlags binds the flags of pubkey to keyFile.
func pubkeyFlags(keyFile *string) *flag.FlagSet {
	fs := flag.NewFlagSet("pubkey", flag.ContinueOnError)
	fs.StringVar(keyFile, "key", "", "PEM private key file (required)")
	return fs
}

// runPubkey prints the PKIX PEM public key of a private key.
func runPubkey(args []string, stdout, stderr io.Writer) error {
	var keyFile string
	fs := pubkeyFlags(&keyFile)
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("pubkey: unexpected argument %q", fs.Arg(0))
	}
	if keyFile == "" {
		return errors.New("pubkey: -key is required")
	}
	var (
		s   crypto.Signer
		err error
	)
	if s, err = readPrivateKey(keyFile); err != nil {
		return fmt.Errorf("pubkey: %w", err)
	}
	b, err := encodePublicKey(s)
	if err != nil {
		return fmt.Errorf("pubkey: %w", err)
	}
	_, err = stdout.Write(b)
	return err
}
