"""The task form's agent picker: each agent the server has a driver for, with its version in the
workspace's image, its models, and what (if anything) keeps the caller from running it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aicode.agents.catalog import AgentCatalog
from aicode.agents.registry import AGENTS, driver_for
from aicode.credentials.providers import PROVIDER_LABELS
from aicode.credentials.service import CredentialService
from aicode.errors import InvalidInputError
from aicode.workspaces.models import WorkspaceRecord

__all__ = ["DEFAULT_AGENT", "AgentChoice", "AgentPicker", "checked_agent"]

# What a task runs when it names no agent (TaskCreate's default).
DEFAULT_AGENT = "claude"


@dataclass(frozen=True, slots=True)
class AgentChoice:
    name: str
    label: str
    provider: str
    provider_label: str
    version: str | None  # None: not in the image, or the image could not be looked at
    default_model: str | None  # None: the CLI's own default
    models: tuple[str, ...]
    blocked: str | None = None  # why it cannot run here, short enough for the option's text
    advice: str | None = None  # what to do about it, in a sentence

    @property
    def option_text(self) -> str:
        return " ".join(part for part in (self.label, self.version, f"— {self.blocked}" if self.blocked else None)
                        if part)


@dataclass(frozen=True, slots=True)
class AgentPicker:
    choices: list[AgentChoice]
    selected: str
    problem: str | None = None  # the image could not be looked at: versions are unknown, nothing is blocked for it

    @classmethod
    async def build(cls, catalog: AgentCatalog, credentials: CredentialService, user_id: UUID,
                    workspace: WorkspaceRecord, wanted: str | None = None) -> AgentPicker:
        """The agents for a task in `workspace` asked for by `user_id`; `wanted` preselected if it may run."""
        image = workspace.image or catalog.default_image
        found = await catalog.agents_in(image)
        keys = await credentials.providers_of(user_id, workspace.id)
        choices = [_choice(name, found.versions.get(name), image, keys, known=found.problem is None)
                   for name in AGENTS]
        runnable = [choice.name for choice in choices if choice.blocked is None]
        preferred = [name for name in (wanted, DEFAULT_AGENT) if name in runnable]
        selected = (preferred or runnable or [wanted if wanted in AGENTS else DEFAULT_AGENT])[0]
        return cls(choices=choices, selected=selected, problem=found.problem)

    @property
    def current(self) -> AgentChoice:
        return next(choice for choice in self.choices if choice.name == self.selected)


def _choice(name: str, version: str | None, image: str, keys: set[str], *, known: bool) -> AgentChoice:
    driver = driver_for(name)
    provider_label = PROVIDER_LABELS[driver.provider]
    blocked = advice = None
    if known and version is None:
        blocked = "not in the image"
        advice = f"{driver.label}: {driver.executable} is not installed in the image {image}."
    elif driver.provider not in keys:
        blocked = f"no {provider_label} key"
        advice = (f"{driver.label}: no {provider_label} key — add yours under Settings → Model keys, "
                  "or a workspace owner adds a team key on this page.")
    return AgentChoice(name=name, label=driver.label, provider=driver.provider, provider_label=provider_label,
                       version=version, default_model=driver.default_model, models=driver.models,
                       blocked=blocked, advice=advice)


def checked_agent(value: str | None) -> str:
    """The agent a submitted form names (the default when it names none); a message naming them if unknown."""
    if not value:
        return DEFAULT_AGENT
    if value not in AGENTS:
        names = ", ".join(f"{driver_for(name).label} ({name})" for name in AGENTS)
        raise InvalidInputError(f"agent: no agent {value!r} on this server; choose one of {names}")
    return value
