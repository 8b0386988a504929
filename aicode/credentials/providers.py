"""The model providers agents run on, and what a credential for each may be."""

from __future__ import annotations

from typing import Final

__all__ = ["ANTHROPIC", "CREDENTIAL_KINDS", "GEMINI", "OPENAI", "PROVIDERS", "PROVIDER_LABELS"]

ANTHROPIC: Final = "anthropic"
OPENAI: Final = "openai"
GEMINI: Final = "gemini"
PROVIDERS: Final = (ANTHROPIC, OPENAI, GEMINI)
PROVIDER_LABELS: Final = {ANTHROPIC: "Anthropic", OPENAI: "OpenAI", GEMINI: "Google Gemini"}
# An OAuth token is a Claude Pro/Max subscription's (`claude setup-token`); the others take API keys only.
CREDENTIAL_KINDS: Final = {ANTHROPIC: ("api_key", "oauth_token"), OPENAI: ("api_key",), GEMINI: ("api_key",)}
