package config

import (
	"errors"
	"math"
	"strings"
)

// observabilityProblems checks the access-log and sampling variables.
func (c *Config) observabilityProblems() []error {
	var errs []error
	if r := c.RefusalLogRate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		errs = append(errs, errors.New("REFUSAL_LOG_RATE: want a number of lines per second, at least 0 (0: no limit)"))
	}
	if claim := c.AccessLogSubjectClaim; claim == "" || strings.HasPrefix(claim, ".") ||
		strings.HasSuffix(claim, ".") || strings.Contains(claim, "..") {
		errs = append(errs, errors.New("ACCESS_LOG_SUBJECT_CLAIM: want a claim name or dotted path such as sub or client.name"))
	}
	return errs
}
