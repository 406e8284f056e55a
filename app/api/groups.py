"""Group routes (issue 13.3): list, create, info with participants and admins, participants
add/remove/promote/demote with per-participant results, subject, description, settings,
invite code (get/revoke), join by code, leave.

Reads are engine queries, writes engine commands on the session's queue
(:mod:`app.services.chats`); an engine that cannot do one answers 501 ENGINE_UNSUPPORTED.
"""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.chats import engine_route, group_id_param
from app.auth import current_key, require
from app.models import Session
from app.schemas.chats import (
    INVITE_LINK,
    DescriptionSchema,
    GroupCreatedSchema,
    GroupCreateSchema,
    GroupSchema,
    GroupSettingsUpdateSchema,
    InviteCodeSchema,
    JoinedSchema,
    JoinSchema,
    ParticipantResultSchema,
    ParticipantsSchema,
    SubjectSchema,
    SuccessSchema,
)
from app.services import chats

blp = Blueprint("groups", __name__, description="Groups")


@blp.route("/<sid>/groups")
class Groups(MethodView):
    @require("viewer")
    @blp.response(200, GroupSchema(many=True))
    def get(self, session: Session) -> Any:
        """The account's groups, with their participants"""
        return chats.filter_chats(current_key(), chats.read(session, "groups", []))

    @engine_route
    @require("operator")
    @blp.arguments(GroupCreateSchema)
    @blp.response(201, GroupCreatedSchema)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Create a group; `results` says how each participant was added"""
        return chats.command(session, "create_group", [data["name"], data["participants"]])


@blp.route("/<sid>/groups/join")
class Join(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(JoinSchema)
    @blp.response(200, JoinedSchema)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Join a group by its invite code"""
        return {"groupId": chats.command(session, "join_group", [data["invite_code"]])}


@blp.route("/<sid>/groups/<group_id:groupId>")
class Group(MethodView):
    @engine_route
    @require("viewer")
    @blp.response(200, GroupSchema)
    def get(self, session: Session, groupId: str) -> Any:  # noqa: N803 (the path's name)
        """A group: subject, description, owner, participants (with admins), settings"""
        return chats.read(session, "group_info", [group_id_param(groupId)])


def _participants(session: Session, group_id: str, action: str, data: dict[str, Any]) -> Any:
    return chats.command(session, "change_participants",
                         [group_id_param(group_id), action, data["participants"]])


@blp.route("/<sid>/groups/<group_id:groupId>/participants")
class Participants(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(ParticipantsSchema)
    @blp.response(200, ParticipantResultSchema(many=True))
    def post(self, data: dict[str, Any], session: Session, groupId: str) -> Any:  # noqa: N803
        """Add participants; one result each"""
        return _participants(session, groupId, "add", data)

    @engine_route
    @require("operator")
    @blp.arguments(ParticipantsSchema)
    @blp.response(200, ParticipantResultSchema(many=True))
    def delete(self, data: dict[str, Any], session: Session, groupId: str) -> Any:  # noqa: N803
        """Remove participants; one result each"""
        return _participants(session, groupId, "remove", data)


@blp.route("/<sid>/groups/<group_id:groupId>/participants/promote")
class Promote(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(ParticipantsSchema)
    @blp.response(200, ParticipantResultSchema(many=True))
    def post(self, data: dict[str, Any], session: Session, groupId: str) -> Any:  # noqa: N803
        """Make participants admins; one result each"""
        return _participants(session, groupId, "promote", data)


@blp.route("/<sid>/groups/<group_id:groupId>/participants/demote")
class Demote(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(ParticipantsSchema)
    @blp.response(200, ParticipantResultSchema(many=True))
    def post(self, data: dict[str, Any], session: Session, groupId: str) -> Any:  # noqa: N803
        """Take admin rights away; one result each"""
        return _participants(session, groupId, "demote", data)


@blp.route("/<sid>/groups/<group_id:groupId>/subject")
class Subject(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(SubjectSchema)
    @blp.response(200, SuccessSchema)
    def put(self, data: dict[str, Any], session: Session, groupId: str) -> Any:  # noqa: N803
        """Change the group's subject"""
        chats.command(session, "set_group_subject", [group_id_param(groupId), data["subject"]])
        return {"success": True}


@blp.route("/<sid>/groups/<group_id:groupId>/description")
class Description(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(DescriptionSchema)
    @blp.response(200, SuccessSchema)
    def put(self, data: dict[str, Any], session: Session, groupId: str) -> Any:  # noqa: N803
        """Change the group's description"""
        chats.command(session, "set_group_description",
                      [group_id_param(groupId), data["description"]])
        return {"success": True}


@blp.route("/<sid>/groups/<group_id:groupId>/settings")
class Settings(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(GroupSettingsUpdateSchema, example={"announce": False})
    @blp.response(200, SuccessSchema)
    def put(self, data: dict[str, Any], session: Session, groupId: str) -> Any:  # noqa: N803
        """Only admins send (`announce`) / only admins edit the group's info (`restrict`)"""
        chats.command(session, "set_group_settings",
                      [group_id_param(groupId), data.get("announce"), data.get("restrict")])
        return {"success": True}


def _invite(code: str) -> dict[str, str]:
    return {"inviteCode": code, "inviteLink": INVITE_LINK.format(code)}


@blp.route("/<sid>/groups/<group_id:groupId>/invite-code")
class InviteCode(MethodView):
    @engine_route
    @require("operator")
    @blp.response(200, InviteCodeSchema)
    def get(self, session: Session, groupId: str) -> Any:  # noqa: N803
        """The group's invite code and link"""
        return _invite(chats.command(session, "group_invite_code", [group_id_param(groupId), False]))

    @engine_route
    @require("operator")
    @blp.response(200, InviteCodeSchema)
    def post(self, session: Session, groupId: str) -> Any:  # noqa: N803
        """The group's invite code and link"""
        return _invite(chats.command(session, "group_invite_code", [group_id_param(groupId), False]))


@blp.route("/<sid>/groups/<group_id:groupId>/invite-code/revoke")
class RevokeInviteCode(MethodView):
    @engine_route
    @require("operator")
    @blp.response(200, InviteCodeSchema)
    def post(self, session: Session, groupId: str) -> Any:  # noqa: N803
        """Revoke the invite code; the new one"""
        return _invite(chats.command(session, "group_invite_code", [group_id_param(groupId), True]))


@blp.route("/<sid>/groups/<group_id:groupId>/leave")
class Leave(MethodView):
    @engine_route
    @require("operator")
    @blp.response(200, SuccessSchema)
    def post(self, session: Session, groupId: str) -> Any:  # noqa: N803
        """Leave the group"""
        chats.command(session, "leave_group", [group_id_param(groupId)])
        return {"success": True}
