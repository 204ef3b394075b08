package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// tokenResponse is the RFC 6749 §5.1 answer with the OpenID Connect
// id_token.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

// tokenError is the RFC 6749 §5.2 error answer.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// exchange posts a grant to the token endpoint with client_secret_basic
// and reads the answer. The reason says how it failed: ReplayedCode for
// invalid_grant, IdPError for another OAuth error, ExchangeFailed when
// there is no usable answer.
func (l *Login) exchange(ctx context.Context, p *provider, form url.Values) (*tokenResponse, Reason, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, ExchangeFailed, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic.
	req.SetBasicAuth(url.QueryEscape(l.opts.ClientID), url.QueryEscape(l.secret))
	resp, err := l.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, ExchangeFailed, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, ExchangeFailed, fmt.Errorf("token endpoint: %w", err)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, ExchangeFailed, fmt.Errorf("token endpoint answered %d with %q, not JSON", resp.StatusCode, mt)
	}
	if resp.StatusCode != http.StatusOK {
		var e tokenError
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return nil, ExchangeFailed, fmt.Errorf("token endpoint answered %d without an OAuth error", resp.StatusCode)
		}
		err := fmt.Errorf("token endpoint: %s: %s", e.Error, e.Description)
		if e.Error == "invalid_grant" {
			return nil, ReplayedCode, err
		}
		return nil, IdPError, err
	}
	var t tokenResponse
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, ExchangeFailed, fmt.Errorf("token endpoint: %w", err)
	}
	// RFC 6749 §5.1 requires both; OpenID Connect §3.1.3.3 says Bearer.
	if t.AccessToken == "" || !strings.EqualFold(t.TokenType, "Bearer") {
		return nil, ExchangeFailed, errors.New("token endpoint: the answer lacks access_token or is not of type Bearer")
	}
	return &t, "", nil
}
