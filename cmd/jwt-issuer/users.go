package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
)

// devUser is a person who can sign in at /authorize. Users are static and
// their passwords plain: this is a development service, never an identity
// provider for real people.
type devUser struct {
	Name     string         `json:"username"`
	Password string         `json:"password"`
	Claims   map[string]any `json:"claims"` // added to the ID and access tokens
}

// loadUsers merges USERS (name:password entries) and USERS_FILE (a JSON
// array of devUser); a name may appear once.
func loadUsers(entries []string, file string) (map[string]devUser, error) {
	users := map[string]devUser{}
	add := func(u devUser) error {
		switch {
		case u.Name == "" || u.Password == "":
			return fmt.Errorf("user %q needs a username and a password", u.Name)
		case users[u.Name].Name != "":
			return fmt.Errorf("user %q appears twice", u.Name)
		}
		users[u.Name] = u
		return nil
	}
	for _, e := range entries {
		name, password, ok := strings.Cut(strings.TrimSpace(e), ":")
		if !ok {
			return nil, fmt.Errorf("USERS: entry %q is not name:password", e)
		}
		if err := add(devUser{Name: name, Password: password}); err != nil {
			return nil, fmt.Errorf("USERS: %w", err)
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("USERS_FILE: %w", err)
		}
		var list []devUser
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("USERS_FILE: %w", err)
		}
		for _, u := range list {
			if err := add(u); err != nil {
				return nil, fmt.Errorf("USERS_FILE: %w", err)
			}
		}
	}
	return users, nil
}

// checkPassword compares in constant time over hashes, doing the same work
// for an unknown user.
func checkPassword(users map[string]devUser, name, password string) (devUser, bool) {
	u, known := users[name]
	want := sha256.Sum256([]byte(u.Password))
	got := sha256.Sum256([]byte(password))
	return u, subtle.ConstantTimeCompare(want[:], got[:]) == 1 && known
}

// redirectAllowed applies REDIRECT_URIS to a redirect_uri or a
// post_logout_redirect_uri: an exact match of the list, or, with an empty
// list, any http(s) URL on a loopback host (what a developer's sidecar
// uses). A URL with a fragment is never allowed (RFC 6749 §3.1.2).
func (s *server) redirectAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" || u.User != nil {
		return false
	}
	if len(s.cfg.RedirectURIs) > 0 {
		return slices.Contains(s.cfg.RedirectURIs, raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateLogin checks the settings of the browser login endpoints.
func (c config) validateLogin() []error {
	var errs []error
	if _, err := loadUsers(c.Users, c.UsersFile); err != nil {
		errs = append(errs, err)
	}
	if c.RefreshTokenTTL <= 0 {
		errs = append(errs, errors.New("REFRESH_TOKEN_TTL: must be positive"))
	}
	for _, r := range c.RedirectURIs {
		if u, err := url.Parse(r); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("REDIRECT_URIS: %q is not an absolute http(s) URL without a fragment", r))
		}
	}
	return errs
}
