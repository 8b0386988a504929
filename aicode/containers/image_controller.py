"""`/api/admin/image`: whether this node's Docker engine has the default workspace image, and building it
from the Containerfile's `workspace` target (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED

from aicode.auth.guards import requires_admin
from aicode.auth.models import UserRecord
from aicode.containers.image_build import ImageBuild, ImageBuilds, ImageStatus

__all__ = ["ImageController", "image_out"]


class ImageBuildOut(msgspec.Struct):
    state: str  # running | succeeded | failed
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    lines: list[str]  # progress after `after` (as much as is kept)
    line_count: int  # pass it as `after` to get only what comes next


class ImageOut(msgspec.Struct):
    image: str
    present: bool | None  # None: the Docker engine could not be asked
    problem: str | None
    build: ImageBuildOut | None


def _build_out(build: ImageBuild, after: int) -> ImageBuildOut:
    return ImageBuildOut(state=build.state, started_by=build.started_by, started_at=build.started_at,
                         finished_at=build.finished_at, error=build.error, lines=build.since(after),
                         line_count=build.line_count)


def image_out(status: ImageStatus, after: int = 0) -> ImageOut:
    return ImageOut(image=status.image, present=status.present, problem=status.problem,
                    build=_build_out(status.build, after) if status.build else None)


After = Annotated[int, Parameter(ge=0, description="Progress lines already seen: only later ones are sent")]


class ImageController(Controller):
    path = "/api/admin/image"
    tags = ["admin"]
    guards = [requires_admin]

    @get("/")
    async def image(self, image_builds: NamedDependency[ImageBuilds], after: After = 0) -> ImageOut:
        """The default workspace image on this node's Docker engine, and this node's last build of it."""
        return image_out(await image_builds.status(), after)

    @post("/build", status_code=HTTP_202_ACCEPTED)
    async def build(self, request: Request[UserRecord, Any, Any],
                    image_builds: NamedDependency[ImageBuilds]) -> ImageOut:
        """Build the Containerfile's `workspace` target as the default image on this node (it pulls its base
        images); follow it with GET /api/admin/image?after=N. A 409 while a build runs."""
        image_builds.start(request.user.username)
        return image_out(await image_builds.status())
