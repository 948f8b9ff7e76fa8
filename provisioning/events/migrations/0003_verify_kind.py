from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0002_async_outcome'),
    ]

    operations = [
        migrations.AlterField(
            model_name='event',
            name='kind',
            field=models.CharField(choices=[('create', 'prov:create'), ('put', 'prov:put'), ('patch', 'prov:patch'), ('delete', 'prov:delete'), ('activate', 'prov:activate'), ('deactivate', 'prov:deactivate'), ('asyncresp', 'misc:asyncresp'), ('verify', 'ssf:verification')], max_length=10),
        ),
    ]
