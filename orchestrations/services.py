import hashlib
import json
import logging
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.cancellation import hosted_run_cancel
from agents.dispatch import dispatch_run
from agents.events import encode_event
from agents.models import RunEvent
from powabase.errors import Conflict, NotFound, ValidationFailed

from .models import Entity, Orchestration, OrchestrationRun

logger = logging.getLogger(__name__)


def new_session_id() -> str:
    return f"orch_sess_{secrets.token_hex(6)}"


def team_snapshot(orchestration: Orchestration) -> dict:
    """Return the team's config as the run will use it, frozen at submission.

    Uses the entities prefetched with their agents (selectors.orchestration_get)
    when they are there, so submitting a run through the API does not read
    them twice.
    """
    prefetched = getattr(orchestration, "_prefetched_objects_cache", {}).get("entities")
    if prefetched is None:
        prefetched = orchestration.entities.select_related("agent")
    entities = sorted(prefetched, key=lambda entity: (entity.position, entity.created_at))
    return {
        "orchestration": {
            "id": str(orchestration.id),
            "name": orchestration.name,
            "strategy": orchestration.strategy,
            "orchestrator_config": orchestration.orchestrator_config,
            "settings": orchestration.settings,
        },
        "entities": [
            {
                "entity_id": str(entity.id),
                "role_description": entity.role_description,
                "config": entity.config,
                "position": entity.position,
                "agent": {
                    "id": str(entity.agent.id),
                    "name": entity.agent.name,
                    "model": entity.agent.model,
                    "system_prompt": entity.agent.system_prompt,
                    "settings": entity.agent.settings,
                },
            }
            for entity in entities
        ],
    }


def coordinator_model(orchestration: Orchestration) -> str:
    return (
        (orchestration.orchestrator_config or {}).get("model")
        or (orchestration.settings or {}).get("model")
        or settings.POWABASE_DEFAULT_MODEL
    )


def request_fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def entity_add(*, orchestration: Orchestration, agent, role_description: str = "",
               config: dict | None = None, position: int | None = None,
               entity_type: str = "agent") -> Entity:
    if Entity.objects.filter(orchestration=orchestration, agent=agent).exists():
        raise Conflict(f"Agent {agent.id} is already an entity of this orchestration.",
                       code="entity_exists")
    if position is None:
        last = orchestration.entities.order_by("-position").values_list("position", flat=True).first()
        position = 0 if last is None else last + 1
    try:
        with transaction.atomic():
            return Entity.objects.create(
                orchestration=orchestration, agent=agent, role_description=role_description,
                config=config or {}, position=position, entity_type=entity_type,
            )
    except IntegrityError:
        raise Conflict(f"Agent {agent.id} is already an entity of this orchestration.",
                       code="entity_exists") from None


def run_submit(*, owner, orchestration: Orchestration, message: str, session_id: str | None = None,
               idempotency_key: str = "") -> tuple[OrchestrationRun, bool]:
    """Create a run and queue it after commit; return (run, created).

    A created run carries its stored first event as `run.start_event`, a
    (seq, event, data) tuple, so its stream can begin without reading it back.

    With an idempotency key already used for the same request, return that
    run instead of starting a second paid one.
    """
    payload = {"orchestration_id": str(orchestration.id), "message": message,
               "session_id": session_id}
    fingerprint = request_fingerprint(payload)
    if idempotency_key:
        existing = _run_for_idempotency_key(owner, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False

    snapshot = team_snapshot(orchestration)
    if not snapshot["entities"]:
        raise ValidationFailed("The orchestration has no entity agents; add at least one entity "
                               "agent before running.", code="no_entities")
    if session_id:
        _check_session(owner, session_id)

    try:
        with transaction.atomic():
            run = OrchestrationRun.objects.create(
                owner=owner, orchestration=orchestration, orchestration_name=orchestration.name,
                strategy=orchestration.strategy, session_id=session_id or new_session_id(),
                message=message, model=coordinator_model(orchestration), config_snapshot=snapshot,
                idempotency_key=idempotency_key, request_hash=fingerprint,
            )
            data = encode_event("start", run.id, 1, {"run_id": run.id, "session_id": run.session_id})
            RunEvent.objects.create(run_id=run.id, seq=1, event="start", data=data)
            run.start_event = (1, "start", data)
            transaction.on_commit(lambda: dispatch_orchestration_run(run.id))
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _run_for_idempotency_key(owner, idempotency_key, fingerprint)
        if existing is None:
            raise
        return existing, False

    logger.info("run %s submitted for orchestration %s", run.id, orchestration.id)
    return run, True


def _run_for_idempotency_key(owner, key: str, fingerprint: str) -> OrchestrationRun | None:
    existing = OrchestrationRun.objects.filter(
        owner=owner, idempotency_key=key,
        created_at__gte=timezone.now() - timezone.timedelta(hours=24),
    ).first()
    if existing is None:
        return None
    if existing.request_hash != fingerprint:
        raise IdempotencyKeyReused(key)
    return existing


class IdempotencyKeyReused(Conflict):
    status = 422
    code = "idempotency_key_reused"

    def __init__(self, key: str):
        super().__init__("This Idempotency-Key was already used with a different request body.")


def _check_session(owner, session_id: str) -> None:
    other_owner = (
        OrchestrationRun.objects.filter(session_id=session_id).exclude(owner=owner).exists()
    )
    if other_owner:
        raise NotFound(f"No session {session_id}.", code="session_not_found")


def dispatch_orchestration_run(run_id: str) -> None:
    """Hand the run to a Celery worker, or to this process's run host when embedded."""
    dispatch_run(OrchestrationRun, run_id)


def run_cancel(*, run: OrchestrationRun) -> OrchestrationRun:
    """Ask for the team run to stop; see agents.cancellation.hosted_run_cancel."""
    return hosted_run_cancel(run=run)


def orchestration_create(*, owner, name: str, description: str = "", strategy: str = "supervisor",
                         orchestrator_config: dict | None = None,
                         settings_: dict | None = None) -> Orchestration:
    return Orchestration.objects.create(
        owner=owner, name=name, description=description, strategy=strategy,
        orchestrator_config=orchestrator_config or {}, settings=settings_ or {},
    )


def orchestration_update(*, orchestration: Orchestration, data: dict) -> Orchestration:
    for field in ("name", "description", "strategy", "orchestrator_config", "settings"):
        if field in data:
            setattr(orchestration, field, data[field])
    orchestration.save()
    return orchestration


def orchestration_delete(*, orchestration: Orchestration) -> None:
    # Runs keep their name and config snapshot; their foreign key is set to NULL.
    orchestration.delete()


def entity_update(*, entity: Entity, data: dict) -> Entity:
    if "role" in data:
        entity.role_description = data["role"]
    if "config" in data:
        entity.config = data["config"]
    if "position" in data:
        entity.position = data["position"]
    entity.save()
    return entity


def entity_remove(*, entity: Entity) -> None:
    entity.delete()
