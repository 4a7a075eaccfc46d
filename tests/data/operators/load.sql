insert into t select * from staging where ds = '{{ ds }}' -- {{ task.task_id }}
