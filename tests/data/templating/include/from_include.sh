echo "include {{ ds_nodash }}" > $TEMPLATES_OUT/bash_searchpath.txt
