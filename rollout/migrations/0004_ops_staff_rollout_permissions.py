"""Give the group 'Ops staff' the rollout permissions: view the rollouts, walk and roll them back.

Authors get none of them.
"""
from django.contrib.auth.management import create_permissions
from django.db import migrations

OPS_STAFF_GROUP = "Ops staff"
ROLLOUT_PERMISSIONS = [
    "view_rollout", "add_rollout", "change_rollout", "advance_rollout", "rollback_rollout",
    "view_rolloutphase", "view_rolloutevent",
]


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations ran; a fresh database needs them now.
    app_config = apps.get_app_config("rollout")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=OPS_STAFF_GROUP)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="rollout", codename__in=ROLLOUT_PERMISSIONS))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=OPS_STAFF_GROUP).first()
    if group is not None:
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="rollout", codename__in=ROLLOUT_PERMISSIONS))


class Migration(migrations.Migration):
    dependencies = [
        ("authors", "0001_groups"),
        ("rollout", "0003_rollouts"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
