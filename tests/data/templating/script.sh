echo "file {{ ds }} {{ params.x }}" > $TEMPLATES_OUT/bash_file.txt
