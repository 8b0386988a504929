"""What the overview offers someone starting out: the first-run checklist (image → model key → workspace →
first task), and the "New task" form's choices (the workspaces they may run tasks in, with the model keys
each one gives them, and the agents)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aicode.access.policy import Action, permits
from aicode.agents.registry import AGENTS, driver_for
from aicode.auth.models import UserRecord
from aicode.containers.image_build import ImageBuilds
from aicode.credentials.providers import PROVIDER_LABELS
from aicode.credentials.service import CredentialService
from aicode.web.repo import DashboardRepo
from aicode.workspaces.service import WorkspaceService

__all__ = ["ChecklistStep", "FirstRun", "NewTaskChoices", "RunnableWorkspace", "first_run"]


@dataclass(frozen=True, slots=True)
class ChecklistStep:
    title: str
    done: bool
    hint: str  # what to do (or what was done)
    href: str | None = None  # where to do it
    action: str | None = None  # the link's text


@dataclass(frozen=True, slots=True)
class RunnableWorkspace:
    id: UUID
    name: str
    ready: bool
    providers: frozenset[str]  # the model keys a task here runs with: the user's own and the team's


@dataclass(frozen=True, slots=True)
class AgentOption:
    name: str
    label: str
    provider: str
    provider_label: str


@dataclass(frozen=True, slots=True)
class NewTaskChoices:
    workspaces: list[RunnableWorkspace]
    agents: list[AgentOption]


@dataclass(frozen=True, slots=True)
class FirstRun:
    steps: list[ChecklistStep]
    choices: NewTaskChoices

    @property
    def done(self) -> bool:
        return all(step.done for step in self.steps)


async def first_run(user: UserRecord, image_builds: ImageBuilds, credentials: CredentialService,
                    workspaces: WorkspaceService, dashboard: DashboardRepo) -> FirstRun:
    image = await image_builds.status()
    own_keys = await credentials.providers_of(user.id)
    listed = await workspaces.list(user)
    # The user's own keys count in every workspace: read once, with each workspace's team keys beside them.
    runnable = [RunnableWorkspace(id=w.id, name=w.name, ready=w.status == "ready",
                                  providers=frozenset(own_keys | await credentials.team_providers(w.id)))
                for w, role in listed if permits(role, Action.RUN, admin=user.is_admin)]
    agents = [AgentOption(name=name, label=driver_for(name).label, provider=driver_for(name).provider,
                          provider_label=PROVIDER_LABELS[driver_for(name).provider]) for name in AGENTS]
    has_key = bool(own_keys) or any(w.providers for w in runnable)
    if image.present:
        image_step = ChecklistStep("The workspace image", True, f"{image.image} is on the Docker engine.")
    elif user.is_admin:
        image_step = ChecklistStep("The workspace image", False, image.problem or "", "/admin#image", "Build it")
    else:
        image_step = ChecklistStep("The workspace image", False,
                                   (image.problem or "") + " — an admin builds it on the Admin page.")
    steps = [
        image_step,
        ChecklistStep("Add your model key", has_key,
                      "A key is stored." if has_key else
                      "Agents call their model with your key (Anthropic, OpenAI or Gemini), kept encrypted.",
                      None if has_key else "/settings#keys-head", None if has_key else "Add a key"),
        ChecklistStep("Add a workspace", bool(listed),
                      "You have a workspace." if listed else "A workspace is a git repository agents work on.",
                      None if listed else "/workspaces#new-ws", None if listed else "Add a workspace"),
        ChecklistStep("Run a first task", await dashboard.has_submitted(user.id),
                      "Describe a change below; the agent commits it on a branch you review.",
                      None, None),
    ]
    return FirstRun(steps=steps, choices=NewTaskChoices(workspaces=runnable, agents=agents))
