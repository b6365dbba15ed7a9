"""The city model: entities addressed by NGSI-LD URNs (人、地、事、物、情、组织)."""

from citybrain.model.entity import Attribute, Entity, HistoryRow, ObservationRow
from citybrain.model.urn import entity_type_of, is_urn, make_urn

__all__ = ["Attribute", "Entity", "HistoryRow", "ObservationRow", "entity_type_of", "is_urn", "make_urn"]
