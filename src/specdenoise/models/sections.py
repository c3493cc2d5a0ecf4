"""The ``train.<family>`` sections of ``params.yaml``, validated without importing the families.

:class:`FamilySections` (the base of :class:`specdenoise.config.TrainConfig`) gives each known
family with a settings model its own section; :data:`FamilyName` checks a ``train.families``
entry. "Known" (:func:`known_families`) is the built-in catalogue
(:mod:`specdenoise.models.catalogue`) plus every family registered since
(:func:`specdenoise.models.base.register`, e.g. a plug-in defined outside the package).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from specdenoise.errors import ConfigError
from specdenoise.models.base import FAMILIES, FamilySettings, unknown_family
from specdenoise.models.catalogue import BUILTIN


def known_families() -> dict[str, type[FamilySettings] | None]:
    """Family name -> the settings model of its ``train.<family>`` section (None: it takes none):
    the built-in families of :mod:`specdenoise.models.catalogue` (without importing them) in its
    order, then every family registered since."""
    known = {name: settings for name, (_, settings) in BUILTIN.items()}
    known.update({name: cls.settings_model for name, cls in FAMILIES.items()})
    return known


def check_family_name(name: str) -> str:
    """Validator of a ``train.families`` entry: ``name`` if known, else a one-line error."""
    if name not in known_families():
        raise PydanticCustomError("unknown_family", unknown_family(name, known_families()))
    return name


#: A known family name (checked when validated, so families registered later count).
FamilyName = Annotated[str, AfterValidator(check_family_name)]


def _prefixed(err: ValidationError, prefix: tuple[Any, ...] = ()) -> list[InitErrorDetails]:
    """The line errors of ``err``, locations prefixed by ``prefix``, ready to raise again."""
    out: list[InitErrorDetails] = []
    for e in err.errors():
        detail: InitErrorDetails = {"type": e["type"], "loc": (*prefix, *e["loc"]), "input": e.get("input")}
        if "ctx" in e:
            detail["ctx"] = e["ctx"]
        try:  # a built-in error type stays itself; any other keeps its type name and message
            ValidationError.from_exception_data("check", [detail])
        except (KeyError, TypeError, ValueError):
            detail = {"type": PydanticCustomError(e["type"], e["msg"]), "loc": detail["loc"], "input": detail["input"]}
        out.append(detail)
    return out


def _validate_sections(given: Mapping[str, Any]) -> tuple[dict[str, BaseModel], list[InitErrorDetails]]:
    """Settings instances, one per known family with a settings model, in :func:`known_families`'s
    order (defaults where ``given`` has no section), and the line errors of ``given`` (unknown
    keys, families that take no settings, bad values)."""
    errors: list[InitErrorDetails] = []
    known = known_families()
    for key, value in given.items():
        if key not in known:
            errors.append({"type": "extra_forbidden", "loc": (key,), "input": value})
        elif known[key] is None:
            no = PydanticCustomError("family_settings", "model family '{family}' takes no settings", {"family": key})
            errors.append({"type": no, "loc": (key,), "input": value})
    sections: dict[str, BaseModel] = {}
    for name, model in known.items():
        if model is not None:
            try:
                sections[name] = model.model_validate(given.get(name, {}))
            except ValidationError as err:
                errors.extend(_prefixed(err, (name,)))
    return sections, errors


class FamilySections(BaseModel):
    """Base of :class:`specdenoise.config.TrainConfig`: besides its fields, one ``<family>``
    section per known family (:func:`known_families`) with a settings model, validated by it.

    A section left out takes the model's defaults; any other unknown key is an error (reported,
    like the fields' errors, with its location: ``train.ae.dropout``). Sections are read with
    :meth:`settings` or as attributes (``params.train.ae``), and dumped after the fields in
    :func:`known_families`'s order.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=False)

    @model_validator(mode="wrap")
    @classmethod
    def _family_sections(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        sections, errors = _validate_sections({k: v for k, v in data.items() if k not in cls.model_fields})
        try:
            result = handler({**{k: v for k, v in data.items() if k in cls.model_fields}, **sections})
        except ValidationError as err:
            errors = _prefixed(err) + errors  # the fields' errors first
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return result

    def settings(self, family: str) -> BaseModel | None:
        """The ``train.<family>`` settings of a registered family.

        Returns
        -------
        BaseModel or None
            The family's ``settings_model`` instance (its defaults when the family was
            registered after this configuration was read); None for a family without one.

        Raises
        ------
        ConfigError
            ``family`` is not registered.
        """
        known = known_families()
        if family not in known:
            raise ConfigError(f"train.families: {unknown_family(family, known)}")
        model = known[family]
        if model is None:
            return None
        stored = self.__pydantic_extra__ or {}
        return stored[family] if family in stored else model()

    def __getattr__(self, name: str) -> Any:
        # <family> sections: pydantic's extras, or the defaults of a family registered later
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            if not name.startswith("_") and known_families().get(name) is not None:
                return self.settings(name)
            raise
