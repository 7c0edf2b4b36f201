"""Create the groups 'Extension authors' and 'Ops staff' with their permissions.

Authors may only submit extensions and versions through the author pages. Ops staff curate
the registry in the admin: every registry model permission, plus reviewing and probing
versions. Members of Ops staff also need the staff flag to sign in to the admin.
"""
from django.contrib.auth.management import create_permissions
from django.db import migrations

AUTHORS_GROUP = "Extension authors"
OPS_STAFF_GROUP = "Ops staff"

AUTHOR_PERMISSIONS = [("registry", "submit_extension")]
REGISTRY_MODELS = ["tenant", "extension", "extensionversion", "routingpolicy", "policystep", "apitoken"]
OPS_STAFF_PERMISSIONS = [
    *[("registry", f"{action}_{model}") for action in ("view", "add", "change", "delete") for model in REGISTRY_MODELS],
    ("registry", "review_extensionversion"),
    ("registry", "probe_extensionversion"),
    ("admin", "view_logentry"),
]


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations ran; a fresh database needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ((AUTHORS_GROUP, AUTHOR_PERMISSIONS), (OPS_STAFF_GROUP, OPS_STAFF_PERMISSIONS)):
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[AUTHORS_GROUP, OPS_STAFF_GROUP]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("registry", "0002_review_and_probe"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
